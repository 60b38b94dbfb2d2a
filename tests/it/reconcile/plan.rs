//! `tagwatch plan`: every bump as a JSON line or a text line, holds and "newer" targets reported, and
//! nothing changed on any remote.

use super::*;
use crate::support::git_http::GitHttpServer;
use crate::support::proxy::{Last, LinkStyle, Mode, Proxy};

const USER: &str = "bot";
const PASSWORD: &str = "plan-Pa55word";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_json_lists_bumps_and_left_alone_targets_over_file_and_http_remotes() {
    let registry = registry_with(&["1.0.0", "1.1.0", "1.2.0", "2.0.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let local = bare_repo(
        root.path(),
        "local",
        &[
            ("apps/app.yaml", deployment(&host, "1.0.0", "")),
            (
                "apps/held.yaml",
                deployment(&host, "1.0.0", " # tagwatch: hold"),
            ),
            ("apps/newer.yaml", deployment(&host, "1.9.0", "")),
        ],
    );
    let server = GitHttpServer::start(USER, PASSWORD);
    let remote = server.create_repo("remote");
    add_files(
        &remote,
        &[("apps/app.yaml", deployment(&host, "1.1.0", ""))],
    );
    let heads = (head(&local), head(&remote));

    let repositories = format!(
        "{}{}",
        push_repository("local", &file_url(&local), ""),
        push_repository(
            "http",
            &server.url("remote"),
            &format!("    auth: {{ username: {USER}, passwordEnv: GIT_PASSWORD }}\n")
        ),
    );
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let env = [("GIT_PASSWORD", PASSWORD)];
    let output = tagwatch(&config, &["plan", "--output", "json"], &env);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let image = format!("{host}/{IMAGE}");
    let expected = [
        format!(
            r#"{{"repo":"local","file":"apps/app.yaml","line":10,"policy":"app","image":"{image}","from":"{image}:1.0.0","to":"{image}:1.2.0"}}"#
        ),
        format!(
            r#"{{"repo":"local","file":"apps/held.yaml","line":10,"policy":"app","image":"{image}","from":"{image}:1.0.0","status":"held"}}"#
        ),
        format!(
            r#"{{"repo":"local","file":"apps/newer.yaml","line":10,"policy":"app","image":"{image}","from":"{image}:1.9.0","status":"newer"}}"#
        ),
        format!(
            r#"{{"repo":"http","file":"apps/app.yaml","line":10,"policy":"app","image":"{image}","from":"{image}:1.1.0","to":"{image}:1.2.0"}}"#
        ),
    ];
    assert_eq!(text(&output.stdout), expected.join("\n") + "\n");
    assert_eq!(
        (head(&local), head(&remote)),
        heads,
        "plan changed a remote"
    );

    let output = tagwatch(&config, &["plan"], &env);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "local apps/app.yaml:10 {image}:1.0.0 -> {image}:1.2.0 [app]"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("held by `# tagwatch: hold`"), "{stdout}");
    assert!(stdout.contains("never downgrade"), "{stdout}");
    assert!(text(&output.stderr).contains("2 bump(s) planned in 2 repositories"));
    assert_eq!(
        (head(&local), head(&remote)),
        heads,
        "plan changed a remote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tag_listing_per_image_serves_every_repository_and_policy() {
    let registry = registry_with(&["1.0.0", "1.3.0"]).await;
    let proxy = Proxy::start(
        &registry.url,
        Mode::Paginate {
            page: 1000,
            link: LinkStyle::Relative,
            last: Last::Honour,
        },
    )
    .await;
    let host = proxy.host.clone();
    let root = tempfile::tempdir().unwrap();
    let mut repositories = String::new();
    for name in ["a", "b", "c"] {
        let bare = bare_repo(
            root.path(),
            name,
            &[
                (
                    "apps/app.yaml",
                    deployment(&host, "1.0.0", " # tagwatch: app"),
                ),
                (
                    "apps/pinned.yaml",
                    deployment(&host, "1.0.0", " # tagwatch: app-patch"),
                ),
            ],
        );
        repositories.push_str(&push_repository(name, &file_url(&bare), ""));
    }
    let policies = format!(
        "{}---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-patch }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"~1.0\" }}\n",
        policy(&host, "")
    );
    let config = write_config_for(root.path(), &host, &repositories, &policies);
    let outcomes = reconciler(&config, &[]).plan_all(chrono::Utc::now()).await;
    let bumps: Vec<_> = outcomes
        .iter()
        .flat_map(|outcome| outcome.plan.as_ref().unwrap().bumps.clone())
        .collect();
    // Two policies track the image, so markers choose: `app` moves 1.0.0 to 1.3.0 in every repository,
    // `app-patch` has nothing newer than 1.0.0.
    assert_eq!(bumps.len(), 3, "{outcomes:#?}");
    assert!(
        bumps
            .iter()
            .all(|bump| bump.file == "apps/app.yaml" && bump.to_version == "1.3.0")
    );
    assert_eq!(
        proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one listing for three repositories and two policies"
    );
}
