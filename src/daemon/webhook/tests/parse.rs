//! Parsing rules per endpoint: ignored and invalid entries, injected names and tags, content type,
//! size and shape limits, routing; arbitrary input never panics nor leaves the reference grammar.

use proptest::prelude::*;

use super::*;

fn distribution_envelope(entries: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "events": entries })).unwrap()
}

fn distribution_push(host: &str, repository: &str, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "repository": repository,
            "tag": tag,
        },
        "request": { "host": host, "method": "PUT" },
    })
}

#[test]
fn distribution_keeps_valid_events_and_counts_injected_ones_as_rejected() {
    let body = distribution_envelope(&[
        distribution_push("127.0.0.1:5000", "acme/app", "1.2.3\nmalicious"),
        distribution_push("127.0.0.1:5000", "../../etc/passwd", "1.2.3"),
        distribution_push("127.0.0.1:5000", "acme/app", &"9".repeat(10_000)),
        distribution_push("127.0.0.1:5000", &"a/".repeat(5_000), "1.2.3"),
        distribution_push("127.0.0.1:5000\nX-Injected: 1", "acme/app", "1.2.3"),
        distribution_push("127.0.0.1:5000", "acme/app", "1.2.4"),
    ]);
    let parsed = parse_detailed(Endpoint::Distribution, Some(DISTRIBUTION_V1), &body).unwrap();
    assert_eq!(
        parsed.events,
        vec![event("127.0.0.1:5000/acme/app", Some("1.2.4"))]
    );
    assert_eq!(parsed.rejected, 5);
}

#[test]
fn a_payload_whose_entries_are_all_invalid_is_an_error_that_does_not_echo_them() {
    let body = distribution_envelope(&[distribution_push(
        "127.0.0.1:5000",
        "acme/app",
        "SECRET-LOOKING-PAYLOAD\n",
    )]);
    let error = parse(Endpoint::Distribution, None, &body).unwrap_err();
    assert_eq!(
        error,
        WebhookError::Rejected {
            endpoint: Endpoint::Distribution,
            rejected: 1,
            reason: INVALID_TAG,
        }
    );
    assert_eq!(error.http_status(), 400);
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert!(!error.to_string().contains("SECRET-LOOKING-PAYLOAD"));
    assert_eq!(
        error.to_string(),
        "the distribution webhook names no usable image: 1 rejected entry (first: a tag is not a valid OCI tag)"
    );
}

#[test]
fn distribution_ignores_pulls_mounts_deletes_layers_and_untagged_pushes() {
    let mut layer = distribution_push("127.0.0.1:5000", "acme/app", "1.0");
    layer["target"]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    let mut untagged = distribution_push("127.0.0.1:5000", "acme/app", "1.0");
    untagged["target"]["tag"] = "".into();
    let mut entries = vec![layer, untagged];
    for action in ["pull", "mount", "delete"] {
        let mut other = distribution_push("127.0.0.1:5000", "acme/app", "1.0");
        other["action"] = action.into();
        entries.push(other);
    }
    let parsed = parse_detailed(
        Endpoint::Distribution,
        None,
        &distribution_envelope(&entries),
    )
    .unwrap();
    assert_eq!(
        parsed,
        Parsed {
            events: vec![],
            ignored: 5,
            rejected: 0
        }
    );
}

#[test]
fn distribution_events_for_one_image_and_tag_are_reported_once() {
    let push = distribution_push("registry.example.com", "acme/app", "1.0");
    let body = distribution_envelope(&[push.clone(), push]);
    assert_eq!(
        parse(Endpoint::Distribution, None, &body).unwrap(),
        vec![event("registry.example.com/acme/app", Some("1.0"))]
    );
}

#[test]
fn a_host_that_the_grammar_would_read_as_a_docker_hub_namespace_is_rejected() {
    // `registry/acme/app` is a Docker Hub name: a private registry's event must never name docker.io.
    let body = distribution_envelope(&[distribution_push("registry", "acme/app", "1.0")]);
    assert!(matches!(
        parse(Endpoint::Distribution, None, &body),
        Err(WebhookError::Rejected {
            reason: NO_HOST,
            ..
        })
    ));
    let body = distribution_envelope(&[distribution_push("localhost", "acme/app", "1.0")]);
    assert_eq!(
        parse(Endpoint::Distribution, None, &body).unwrap(),
        vec![event("localhost/acme/app", Some("1.0"))]
    );
}

#[test]
fn distribution_without_an_events_list_is_a_shape_error() {
    for body in [&br#"{}"#[..], br#"{"events": {}}"#] {
        assert!(matches!(
            parse(Endpoint::Distribution, None, body),
            Err(WebhookError::Shape { .. })
        ));
    }
    assert_eq!(
        parse(Endpoint::Distribution, None, br#"{"events": []}"#).unwrap(),
        vec![]
    );
}

#[test]
fn a_field_of_the_wrong_type_rejects_its_entry() {
    let mut push = distribution_push("127.0.0.1:5000", "acme/app", "1.0");
    push["target"]["tag"] = serde_json::json!(["1.0"]);
    let mut target_is_a_string = distribution_push("127.0.0.1:5000", "acme/app", "1.0");
    target_is_a_string["target"] = "acme/app:1.0".into();
    let parsed = parse_detailed(
        Endpoint::Distribution,
        None,
        &distribution_envelope(&[
            push,
            target_is_a_string,
            distribution_push("h.io", "a/b", "2"),
        ]),
    )
    .unwrap();
    assert_eq!(parsed.events, vec![event("h.io/a/b", Some("2"))]);
    assert_eq!(parsed.rejected, 2);
}

#[test]
fn dockerhub_official_images_are_normalized_into_library() {
    let body = br#"{"push_data": {"tag": "1.27"}, "repository": {"repo_name": "nginx"}}"#;
    assert_eq!(
        parse(Endpoint::DockerHub, Some(JSON), body).unwrap(),
        vec![event("docker.io/library/nginx", Some("1.27"))]
    );
}

#[test]
fn dockerhub_without_its_fields_or_with_injected_ones_is_rejected() {
    for body in [
        &br#"{"push_data": {"tag": "1"}}"#[..],
        br#"{"repository": {"repo_name": "acme/app"}}"#,
        br#"{"push_data": {"tag": "1"}, "repository": {"repo_name": "acme/../app"}}"#,
        br#"{"push_data": {"tag": "-rm"}, "repository": {"repo_name": "acme/app"}}"#,
    ] {
        assert!(matches!(
            parse(Endpoint::DockerHub, None, body),
            Err(WebhookError::Rejected { rejected: 1, .. })
        ));
    }
}

fn github_package(action: &str, package_type: &str, owner: &str, name: &str, tag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": action,
        "package": {
            "name": name,
            "namespace": owner,
            "package_type": package_type,
            "owner": { "login": owner },
            "package_version": { "container_metadata": { "tag": { "name": tag } } },
        },
    }))
    .unwrap()
}

#[test]
fn github_acts_on_published_and_updated_container_versions_with_a_tag() {
    for action in ["published", "updated"] {
        assert_eq!(
            parse(
                Endpoint::GitHub,
                None,
                &github_package(action, "CONTAINER", "Acme", "Api", "v2")
            )
            .unwrap(),
            vec![event("ghcr.io/acme/api", Some("v2"))],
            "{action}"
        );
    }
    assert_eq!(
        parse(
            Endpoint::GitHub,
            None,
            &github_package("published", "container", "acme", "team/api", "v2")
        )
        .unwrap(),
        vec![event("ghcr.io/acme/team/api", Some("v2"))]
    );
    for (action, package_type, tag) in [
        ("deleted", "CONTAINER", "v2"),
        ("published", "npm", "v2"),
        ("published", "docker", "v2"),
        ("published", "CONTAINER", ""),
    ] {
        let parsed = parse_detailed(
            Endpoint::GitHub,
            None,
            &github_package(action, package_type, "acme", "api", tag),
        )
        .unwrap();
        assert_eq!(
            parsed,
            Parsed {
                events: vec![],
                ignored: 1,
                rejected: 0
            }
        );
    }
}

#[test]
fn github_owner_falls_back_to_a_plain_namespace_only() {
    let mut package: serde_json::Value = serde_json::from_slice(&github_package(
        "published",
        "CONTAINER",
        "acme",
        "api",
        "v1",
    ))
    .unwrap();
    package["package"]["owner"] = serde_json::Value::Null;
    let body = serde_json::to_vec(&package).unwrap();
    assert_eq!(
        parse(Endpoint::GitHub, None, &body).unwrap(),
        vec![event("ghcr.io/acme/api", Some("v1"))]
    );
    // octokit's examples carry `owner/repository` there, which is no ghcr.io owner.
    package["package"]["namespace"] = "acme/hello-world".into();
    let body = serde_json::to_vec(&package).unwrap();
    assert!(matches!(
        parse(Endpoint::GitHub, None, &body),
        Err(WebhookError::Rejected { .. })
    ));
}

fn harbor_payload(kind: &str, tag: &str, resource_url: &str, repo_full_name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": kind,
        "event_data": {
            "resources": [{ "digest": "sha256:0", "tag": tag, "resource_url": resource_url }],
            "repository": { "repo_full_name": repo_full_name },
        },
    }))
    .unwrap()
}

#[test]
fn harbor_cloudevents_push_with_a_tag_is_an_event() {
    let mut cloud_event: serde_json::Value = serde_json::from_slice(&fixture(
        "harbor/docs-cloudevents-push-artifact-by-digest.json",
    ))
    .unwrap();
    cloud_event["data"]["resources"][0]["tag"] = "3.18".into();
    cloud_event["data"]["resources"][0]["resource_url"] = "localhost/harbor/alpine:3.18".into();
    assert_eq!(
        parse(
            Endpoint::Harbor,
            Some(JSON),
            &serde_json::to_vec(&cloud_event).unwrap()
        )
        .unwrap(),
        vec![event("localhost/harbor/alpine", Some("3.18"))]
    );
}

#[test]
fn harbor_resources_must_agree_with_their_tag_and_repository() {
    let good = harbor_payload(
        "PUSH_ARTIFACT",
        "1.2",
        "harbor.example.com/library/nginx:1.2",
        "library/nginx",
    );
    assert_eq!(
        parse(Endpoint::Harbor, None, &good).unwrap(),
        vec![event("harbor.example.com/library/nginx", Some("1.2"))]
    );
    for body in [
        harbor_payload(
            "PUSH_ARTIFACT",
            "1.2",
            "harbor.example.com/library/nginx:1.3",
            "library/nginx",
        ),
        harbor_payload(
            "PUSH_ARTIFACT",
            "1.2",
            "harbor.example.com/library/nginx:1.2",
            "library/other",
        ),
        harbor_payload("PUSH_ARTIFACT", "1.2", "library/nginx:1.2", "library/nginx"),
        harbor_payload(
            "PUSH_ARTIFACT",
            "1.2",
            "harbor.example.com/Library/../nginx",
            "library/nginx",
        ),
        harbor_payload(
            "PUSH_ARTIFACT",
            "1.2;rm",
            "harbor.example.com/library/nginx",
            "library/nginx",
        ),
    ] {
        assert!(matches!(
            parse(Endpoint::Harbor, None, &body),
            Err(WebhookError::Rejected { rejected: 1, .. })
        ));
    }
    assert_eq!(
        parse(
            Endpoint::Harbor,
            None,
            &harbor_payload(
                "PULL_ARTIFACT",
                "1.2",
                "harbor.example.com/library/nginx:1.2",
                "library/nginx"
            )
        )
        .unwrap(),
        vec![]
    );
}

#[test]
fn quay_reports_each_updated_tag_and_rejects_a_docker_url_without_a_host() {
    let body = br#"{"repository": "ns/app", "docker_url": "quay.example.com:8443/ns/app", "updated_tags": ["1.0", "latest", "bad tag"]}"#;
    let parsed = parse_detailed(Endpoint::Quay, None, body).unwrap();
    assert_eq!(
        parsed.events,
        vec![
            event("quay.example.com:8443/ns/app", Some("1.0")),
            event("quay.example.com:8443/ns/app", Some("latest")),
        ]
    );
    assert_eq!(parsed.rejected, 1);
    for body in [
        &br#"{"docker_url": "ns/app", "updated_tags": ["1.0"]}"#[..],
        br#"{"docker_url": "quay.io/ns/app:1.0", "updated_tags": ["1.0"]}"#,
        br#"{"repository": "ns/other", "docker_url": "quay.io/ns/app", "updated_tags": ["1.0"]}"#,
        br#"{"docker_url": "quay.io/ns/app", "updated_tags": "1.0"}"#,
    ] {
        assert!(matches!(
            parse(Endpoint::Quay, None, body),
            Err(WebhookError::Rejected { .. })
        ));
    }
}

#[test]
fn acr_needs_the_registry_host() {
    let mut push: serde_json::Value =
        serde_json::from_slice(&fixture("acr/docs-push.json")).unwrap();
    push["request"] = serde_json::Value::Null;
    assert!(matches!(
        parse(Endpoint::Acr, None, &serde_json::to_vec(&push).unwrap()),
        Err(WebhookError::Rejected {
            reason: NO_HOST,
            ..
        })
    ));
}

#[test]
fn generic_takes_only_image_and_tag() {
    for body in [
        &br#"{"image": "registry.example.com/acme/app", "tags": ["1.0"]}"#[..],
        br#"{"image": "registry.example.com/acme/app:1.0"}"#,
        br#"{"image": "registry.example.com/acme/app", "tag": "1.0\n"}"#,
        br#"{"image": "Registry.example.com/ACME/app"}"#,
        br#"{"tag": "1.0"}"#,
        br#"{"image": 5}"#,
    ] {
        assert!(
            matches!(
                parse(Endpoint::Generic, None, body),
                Err(WebhookError::Rejected { rejected: 1, .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        parse(
            Endpoint::Generic,
            None,
            br#"{"image": "nginx", "tag": null}"#
        )
        .unwrap(),
        vec![event("docker.io/library/nginx", None)]
    );
}

#[test]
fn json_content_types_are_accepted_and_others_refused() {
    let body = br#"{"image": "registry.example.com/acme/app"}"#;
    for content_type in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        Some(DISTRIBUTION_V1),
        Some(DISTRIBUTION_V2),
        Some("application/cloudevents+json"),
    ] {
        assert!(
            parse(Endpoint::Generic, content_type, body).is_ok(),
            "{content_type:?}"
        );
    }
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "json",
    ] {
        let error = parse(Endpoint::Generic, Some(content_type), body).unwrap_err();
        assert!(matches!(error, WebhookError::UnsupportedContentType { .. }));
        assert_eq!(error.http_status(), 415);
    }
    let long = format!("text/{}", "x".repeat(10_000));
    let message = parse(Endpoint::Generic, Some(&long), body)
        .unwrap_err()
        .to_string();
    assert!(message.len() < 200, "{message}");
}

#[test]
fn bodies_over_one_mebibyte_are_refused_before_parsing() {
    let mut body = br#"{"image": "registry.example.com/acme/app"}"#.to_vec();
    body.resize(MAX_BODY, b' ');
    assert!(parse(Endpoint::Generic, None, &body).is_ok());
    body.push(b' ');
    let error = parse(Endpoint::Generic, Some("text/plain"), &body).unwrap_err();
    assert_eq!(
        error,
        WebhookError::TooLarge {
            endpoint: Endpoint::Generic,
            size: MAX_BODY + 1
        }
    );
    assert_eq!(error.http_status(), 413);
}

#[test]
fn malformed_and_non_object_bodies_are_clear_errors() {
    let error = parse(
        Endpoint::Harbor,
        None,
        b"{\"type\": \"PUSH_ARTIFACT\", SECRET",
    )
    .unwrap_err();
    assert!(matches!(error, WebhookError::Malformed { line: 1, .. }));
    assert!(!error.to_string().contains("SECRET"));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        parse(Endpoint::Generic, None, deep.as_bytes()),
        Err(WebhookError::Malformed { .. })
    ));
    for body in [&b"[]"[..], b"\"text\"", b"null", b"12"] {
        assert!(matches!(
            parse(Endpoint::Acr, None, body),
            Err(WebhookError::Shape { .. })
        ));
    }
}

#[test]
fn endpoints_route_by_name_and_path_token() {
    assert_eq!(
        Endpoint::route("/webhook/distribution"),
        Some((Endpoint::Distribution, None))
    );
    assert_eq!(
        Endpoint::route("/webhook/dockerhub/s3cr3t"),
        Some((Endpoint::DockerHub, Some("s3cr3t")))
    );
    assert_eq!(
        Endpoint::route("/webhook/quay/s3cr3t"),
        Some((Endpoint::Quay, Some("s3cr3t")))
    );
    for path in [
        "/webhook/dockerhub",
        "/webhook/dockerhub/",
        "/webhook/quay/a/b",
        "/webhook/github/extra",
        "/webhook/gitlab",
        "/webhooks/github",
        "/webhook/",
    ] {
        assert_eq!(Endpoint::route(path), None, "{path}");
    }
    for endpoint in Endpoint::ALL {
        assert_eq!(Endpoint::from_name(endpoint.name()), Some(endpoint));
    }
}

/// Whatever a payload holds, an event is inside the grammar: a valid tag and an already-normalized
/// name without whitespace or control characters.
fn assert_events_are_grammatical(events: &[Event]) {
    for event in events {
        assert_eq!(
            reference::normalize_name(&event.image).as_deref(),
            Ok(event.image.as_str())
        );
        assert!(
            !event
                .image
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        );
        if let Some(tag) = &event.tag {
            assert!(reference::is_valid_tag(tag), "{tag:?}");
        }
    }
}

/// Each endpoint's payload with `text` in every place that names an image or a tag.
fn templates(text: &str) -> Vec<(Endpoint, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            Endpoint::Distribution,
            json!({ "events": [
                { "action": "push", "target": { "repository": text, "tag": "1.0" }, "request": { "host": "h.io" } },
                { "action": "push", "target": { "repository": "a/b", "tag": text }, "request": { "host": "h.io" } },
                { "action": "push", "target": { "repository": "a/b", "tag": "1.0" }, "request": { "host": text } },
            ] }),
        ),
        (
            Endpoint::DockerHub,
            json!({ "push_data": { "tag": text }, "repository": { "repo_name": text } }),
        ),
        (
            Endpoint::GitHub,
            json!({ "action": "published", "package": {
                "package_type": "CONTAINER", "name": text, "owner": { "login": text },
                "package_version": { "container_metadata": { "tag": { "name": text } } } } }),
        ),
        (
            Endpoint::Harbor,
            json!({ "type": "PUSH_ARTIFACT", "event_data": {
                "resources": [{ "tag": text, "resource_url": text }, { "tag": "1", "resource_url": format!("h.io/{text}:1") }],
                "repository": { "repo_full_name": text } } }),
        ),
        (
            Endpoint::Quay,
            json!({ "docker_url": format!("quay.io/{text}"), "updated_tags": [text, "1.0"] }),
        ),
        (
            Endpoint::Acr,
            json!({ "action": "push", "target": { "repository": text, "tag": text }, "request": { "host": text } }),
        ),
        (Endpoint::Generic, json!({ "image": text, "tag": text })),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for endpoint in Endpoint::ALL {
            if let Ok(events) = parse(endpoint, None, &body) {
                assert_events_are_grammatical(&events);
            }
        }
    }

    #[test]
    fn injected_names_and_tags_never_leave_the_grammar(text in "\\PC{0,40}|[a-z0-9./:_@-]{0,300}|.{0,20}\n.{0,20}") {
        for (endpoint, payload) in templates(&text) {
            let body = serde_json::to_vec(&payload).unwrap();
            if let Ok(events) = parse(endpoint, Some(JSON), &body) {
                assert_events_are_grammatical(&events);
            }
        }
    }
}
