//! Snapshots of the pull-request body a reviewer decides on in seconds: why each version was chosen,
//! when each new image was built, its digest, and the source changes between the two versions.

use chrono::{DateTime, Utc};
use tagwatch::forge::render::{self, ImageFacts, MergeWait, Reviewed};

use super::change;

const NOW: &str = "2026-03-10T12:00:00Z";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn facts(
    created: &str,
    digest_byte: &str,
    source: Option<&str>,
    revision: Option<&str>,
) -> ImageFacts {
    ImageFacts {
        created: Some(at(created)),
        digest: Some(format!("sha256:{}", digest_byte.repeat(32))),
        source: source.map(str::to_string),
        revision: revision.map(str::to_string),
    }
}

fn text(changes: &[Reviewed]) -> String {
    let plain: Vec<_> = changes.iter().map(|c| c.change.clone()).collect();
    format!(
        "TITLE: {}\n\n{}",
        render::title("prod", &plain),
        render::review_body("prod-config", "prod", changes, at(NOW))
    )
}

const API: &str = "https://github.com/acme/api";
const OLD: &str = "3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a41";
const NEW: &str = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b";

#[test]
fn review_text_one_bump() {
    let bump = Reviewed {
        change: change(
            "clusters/prod/api.yaml",
            12,
            "ghcr.io/acme/api",
            "1.2.3",
            "1.3.0",
            "api",
        ),
        why: "semver ^1.2".into(),
        from_image: facts("2026-01-20T08:00:00Z", "1a", Some(API), Some(OLD)),
        to_image: facts("2026-03-07T09:30:00Z", "2b", Some(API), Some(NEW)),
    };
    insta::assert_snapshot!(text(&[bump]));
}

#[test]
fn review_text_many_bumps() {
    let gitlab = "https://gitlab.example/platform/worker.git";
    let bumps = [
        Reviewed {
            change: change(
                "apps/api/deploy.yaml",
                21,
                "ghcr.io/acme/api",
                "1.2.3",
                "1.3.0",
                "api",
            ),
            why: "semver ^1.2".into(),
            from_image: facts("2026-01-20T08:00:00Z", "1a", Some(API), Some(OLD)),
            to_image: facts("2026-03-07T09:30:00Z", "2b", Some(API), Some(NEW)),
        },
        Reviewed {
            change: change(
                "apps/api/cron.yaml",
                8,
                "ghcr.io/acme/api",
                "1.2.3",
                "1.3.0",
                "api",
            ),
            why: "semver ^1.2".into(),
            from_image: facts("2026-01-20T08:00:00Z", "1a", Some(API), Some(OLD)),
            to_image: facts("2026-03-07T09:30:00Z", "2b", Some(API), Some(NEW)),
        },
        Reviewed {
            change: change(
                "apps/worker/values.yaml",
                4,
                "registry.gitlab.example/platform/worker",
                "main-4f1e2d3-1709000000",
                "main-a1b2c3d-1710000000",
                "worker",
            ),
            why: "filter+numerical".into(),
            from_image: facts("2026-02-26T02:13:20Z", "3c", Some(gitlab), Some("4f1e2d3")),
            to_image: facts("2026-03-09T16:00:00Z", "4d", Some(gitlab), Some("a1b2c3d")),
        },
        Reviewed {
            change: change(
                "apps/web/kustomization.yaml",
                9,
                "ghcr.io/acme/web",
                "2026.03.01",
                "2026.03.10",
                "web",
            ),
            why: "newest".into(),
            from_image: facts(
                "2026-03-01T10:00:00Z",
                "5e",
                Some("https://codeberg.org/acme/web"),
                Some(OLD),
            ),
            to_image: facts(
                "2026-03-10T11:59:30Z",
                "6f",
                Some("https://codeberg.org/acme/web"),
                Some(NEW),
            ),
        },
    ];
    insta::assert_snapshot!(text(&bumps));
}

#[test]
fn review_text_promotion_evidence() {
    let bump = Reviewed {
        change: change(
            "clusters/prod/api.yaml",
            12,
            "ghcr.io/acme/api",
            "1.2.3",
            "1.3.0",
            "api-prod",
        ),
        why: "promoted from staging: ran since 2026-03-08T09:00:00Z (commit 1a2b3c4, 51h), \
              statuses acceptance=success, smoke=success"
            .into(),
        from_image: facts("2026-01-20T08:00:00Z", "1a", Some(API), Some(OLD)),
        to_image: facts("2026-03-07T09:30:00Z", "2b", Some(API), Some(NEW)),
    };
    insta::assert_snapshot!(text(&[bump]));
}

#[test]
fn review_text_images_without_annotations() {
    let bumps = [
        Reviewed {
            change: change(
                "apps/db.yaml",
                3,
                "docker.io/library/postgres",
                "16.2",
                "16.4",
                "postgres",
            ),
            why: "semver ~16".into(),
            from_image: facts("2026-02-01T00:00:00Z", "7a", None, None),
            to_image: facts("2026-03-05T00:00:00Z", "8b", None, None),
        },
        // Only the new image names its source: the source alone is linked.
        Reviewed {
            change: change(
                "apps/cache.yaml",
                5,
                "ghcr.io/acme/cache",
                "0.9.0",
                "1.0.0",
                "cache",
            ),
            why: "semver >=0.9".into(),
            from_image: ImageFacts::default(),
            to_image: ImageFacts {
                created: None,
                digest: None,
                source: Some("https://github.com/acme/cache".into()),
                revision: None,
            },
        },
        // A registry that lies: hostile annotations are shown escaped or not linked.
        Reviewed {
            change: change("apps/evil.yaml", 1, "ghcr.io/evil/app", "1", "2", "evil"),
            why: "semver *|<!-- tagwatch:group=x -->".into(),
            from_image: facts(
                "2026-03-01T00:00:00Z",
                "9c",
                Some("https://github.com/evil/app"),
                Some("zzz|"),
            ),
            to_image: ImageFacts {
                created: Some(at("2027-01-01T00:00:00Z")),
                digest: Some("sha256:not|hex".into()),
                source: Some("https://github.com/evil/app) [click](https://phish.example".into()),
                revision: Some(NEW.into()),
            },
        },
    ];
    let body = text(&bumps);
    assert_eq!(
        render::parse_marker(&body).as_deref(),
        Some("prod-config\nprod")
    );
    assert_eq!(body.matches("<!--").count(), 1, "{body}");
    assert!(!body.contains("phish.example"), "{body}");
    insta::assert_snapshot!(body);
}

#[test]
fn merge_notices() {
    let text = [
        MergeWait::Window {
            opens: at("2026-03-11T08:00:00Z"),
        },
        MergeWait::Approval,
        MergeWait::Checks {
            waiting: vec!["ci/build".into(), "acceptance".into()],
        },
    ]
    .iter()
    .map(|wait| format!("{wait:?}:\n{}", render::merge_notice(wait)))
    .collect::<Vec<_>>()
    .join("\n");
    insta::assert_snapshot!(text);
}
