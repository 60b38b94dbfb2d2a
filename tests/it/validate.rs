//! `tagwatch validate` and config loading on bad input: every kind of problem is reported as
//! `FILE:LINE:COL: FIELD: message`, at the offending key or value, all of them at once (exit 2).

use std::path::Path;
use std::process::Command;

use tagwatch::config::Config;
use tagwatch::environment::Environment;

/// Writes `files` (path, text) into a fresh directory, loads `tagwatch.yaml` from it with `env`, and
/// returns the diagnostics with the directory prefix removed.
fn problems(files: &[(&str, &str)], env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let environment = Environment::from_pairs(env.iter().copied());
    let prefix = format!("{}/", dir.path().display());
    match Config::load(Some(&dir.path().join("tagwatch.yaml")), &environment) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics
            .0
            .iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .collect(),
    }
}

/// One policy file under `policies/`, named by a config that lists the directory.
fn policy_problems(policy: &str) -> Vec<String> {
    problems(
        &[
            ("tagwatch.yaml", "policies: [policies/]\n"),
            ("policies/p.yaml", policy),
        ],
        &[],
    )
}

const HEADER: &str = "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata:\n  name: web\nspec:\n  image: nginx\n";

fn with_header(spec_lines: &str) -> String {
    format!("{HEADER}{spec_lines}")
}

#[test]
fn unknown_key_is_reported_at_the_key_with_a_suggestion() {
    assert_eq!(
        policy_problems(&with_header("  semvr: { range: ^1 }\n")),
        [
            "policies/p.yaml:6:3: spec: a policy needs a selection rule: semver: { range: … }, or order: numerical | alphabetical (with an optional filter)",
            "policies/p.yaml:7:3: spec.semvr: unknown field `semvr` (did you mean `semver`?)",
        ]
    );
}

#[test]
fn unknown_key_in_the_config_lists_the_known_ones() {
    assert_eq!(
        problems(
            &[(
                "tagwatch.yaml",
                "registries:\n  - host: ghcr.io\n    secret: x\n"
            )],
            &[]
        ),
        [
            "tagwatch.yaml:3:5: registries[0].secret: unknown field `secret`, expected one of `auth`, `host`, `insecure`, `maxConcurrency`, `timeout`, `tls`"
        ]
    );
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    assert_eq!(
        policy_problems(&with_header(
            "  semver: { range: ^1 }\n  digest: \"yes\"\n  exclude: \"*-debug\"\n"
        )),
        [
            "policies/p.yaml:8:11: spec.digest: expected a boolean (true or false), found a string",
            "policies/p.yaml:9:12: spec.exclude: expected a list, found a string",
        ]
    );
    assert_eq!(
        problems(
            &[(
                "tagwatch.yaml",
                "registries:\n  - host: ghcr.io\n    maxConcurrency: many\n"
            )],
            &[]
        ),
        ["tagwatch.yaml:3:21: registries[0].maxConcurrency: expected an integer, found a string"]
    );
}

#[test]
fn enum_values_are_checked() {
    assert_eq!(
        policy_problems(&with_header("  order: newest-first\n")),
        [
            "policies/p.yaml:7:10: spec.order: expected one of `numerical`, `alphabetical`, `newest`, found `newest-first`"
        ]
    );
}

#[test]
fn invalid_regex_names_the_pattern() {
    assert_eq!(
        policy_problems(&with_header(
            "  filter: { pattern: '^main-(', extract: '$ts' }\n  order: numerical\n"
        )),
        ["policies/p.yaml:7:22: spec.filter.pattern: invalid regex \"^main-(\": unclosed group"]
    );
}

#[test]
fn extract_must_name_a_group_of_the_pattern() {
    assert_eq!(
        policy_problems(&with_header(
            "  filter: { pattern: '^main-(?P<ts>[0-9]+)$', extract: '$time' }\n  order: numerical\n"
        )),
        [
            "policies/p.yaml:7:56: spec.filter.extract: $time names no group of the pattern (groups: ts)"
        ]
    );
}

#[test]
fn invalid_semver_range_is_reported_at_the_range() {
    assert_eq!(
        policy_problems(&with_header("  semver: { range: \">=abc\" }\n")),
        [
            "policies/p.yaml:7:20: spec.semver.range: invalid semver range \">=abc\": invalid comparator \">=abc\""
        ]
    );
}

#[test]
fn invalid_cron_schedule_is_reported_at_the_schedule() {
    let problems = policy_problems(&with_header(
        "  semver: { range: ^1 }\n  windows:\n    - schedule: \"0 0 25 * * *\"\n      duration: 8h\n",
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("policies/p.yaml:9:17: spec.windows[0].schedule: invalid cron schedule \"0 0 25 * * *\": "),
        "{problems:?}"
    );
}

#[test]
fn standard_five_field_schedules_are_accepted() {
    assert_eq!(
        policy_problems(&with_header(
            "  semver: { range: ^1 }\n  windows:\n    - { schedule: \"0 9 * * Mon-Thu\", duration: 6h, timezone: Europe/Berlin }\n    - { schedule: \"30 22 * * 0,6\", duration: 1h }\n    - { schedule: \"0 0 9 * * Mon-Fri\", duration: 8h }\n",
        )),
        Vec::<String>::new()
    );
}

#[test]
fn weekday_number_in_a_schedule_with_seconds_is_reported_at_the_schedule() {
    assert_eq!(
        policy_problems(&with_header(
            "  semver: { range: ^1 }\n  windows:\n    - schedule: \"0 0 9 * * 1-5\"\n      duration: 8h\n",
        )),
        [
            "policies/p.yaml:9:17: spec.windows[0].schedule: invalid cron schedule \"0 0 9 * * 1-5\": day-of-week `1-5`: write weekday names (Mon-Fri) in a schedule with seconds; numbers are ambiguous there (1 is Sunday for Quartz and the cron crate, Monday for Spring and standard cron); a 5-field schedule reads them as standard cron"
        ]
    );
}

#[test]
fn five_field_schedule_restricting_both_day_fields_is_reported_at_the_schedule() {
    let problems = policy_problems(&with_header(
        "  semver: { range: ^1 }\n  windows: [{ schedule: \"0 9 1 * Mon\", duration: 1h }]\n",
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("policies/p.yaml:8:25: spec.windows[0].schedule: invalid cron schedule \"0 9 1 * Mon\": day-of-month `1` and day-of-week `Mon` are both restricted"),
        "{problems:?}"
    );
}

#[test]
fn bad_durations_and_time_zones_are_reported() {
    assert_eq!(
        policy_problems(&with_header(
            "  semver: { range: ^1 }\n  interval: soon\n  minAge: 0s\n  windows:\n    - { schedule: \"0 0 9 * * *\", duration: 0s, timezone: Mars/Olympus }\n",
        )),
        [
            "policies/p.yaml:8:13: spec.interval: invalid duration \"soon\": expected number at 0 (e.g. 30s, 5m, 1h30m)",
            "policies/p.yaml:11:44: spec.windows[0].duration: must be longer than zero",
            "policies/p.yaml:11:58: spec.windows[0].timezone: unknown time zone \"Mars/Olympus\" (an IANA name, e.g. Europe/Berlin)",
        ]
    );
}

#[test]
fn duplicate_policy_names_point_at_the_first_definition() {
    let policy = with_header("  semver: { range: ^1 }\n");
    assert_eq!(
        problems(
            &[
                ("tagwatch.yaml", "policies: [policies/]\n"),
                ("policies/a.yaml", &policy),
                ("policies/b.yaml", &format!("---\n{policy}")),
            ],
            &[],
        ),
        [
            "policies/b.yaml:5:9: metadata.name: duplicate policy name \"web\" (first defined at policies/a.yaml:4:9)"
        ]
    );
}

#[test]
fn missing_policy_name_is_reported_at_metadata() {
    assert_eq!(
        policy_problems(
            "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { labels: { team: web } }\nspec:\n  image: nginx\n  semver: { range: ^1 }\n"
        ),
        ["policies/p.yaml:3:11: metadata.name: missing required field `name`"]
    );
}

#[test]
fn policy_without_a_selection_rule_is_reported_at_spec() {
    assert_eq!(
        policy_problems(&with_header("  exclude: [\"*-debug\"]\n")),
        [
            "policies/p.yaml:6:3: spec: a policy needs a selection rule: semver: { range: … }, or order: numerical | alphabetical (with an optional filter)"
        ]
    );
}

#[test]
fn unset_secret_env_vars_are_reported_and_set_ones_pass() {
    let config = "registries:\n  - host: ghcr.io\n    auth: { username: bot, passwordEnv: REG_PASSWORD }\nrepositories:\n  - name: prod\n    url: https://git.example.com/prod.git\n    auth: { tokenEnv: GIT_TOKEN }\n";
    assert_eq!(
        problems(&[("tagwatch.yaml", config)], &[("GIT_TOKEN", "t")]),
        [
            "tagwatch.yaml:3:41: registries[0].auth.passwordEnv: environment variable REG_PASSWORD is not set (or empty)"
        ]
    );
    assert!(
        problems(
            &[("tagwatch.yaml", config)],
            &[("GIT_TOKEN", "t"), ("REG_PASSWORD", "p")]
        )
        .is_empty()
    );
}

#[test]
fn repository_paths_cannot_escape_and_urls_carry_no_credentials() {
    assert_eq!(
        problems(
            &[(
                "tagwatch.yaml",
                "repositories:\n  - name: prod\n    url: https://bot:hunter2@git.example.com/prod.git\n    paths: [clusters/prod, ../../etc]\n",
            )],
            &[],
        ),
        [
            "tagwatch.yaml:3:10: repositories[0].url: credentials in the URL (https://***@git.example.com/prod.git) are not allowed: use auth.tokenEnv or auth.passwordEnv",
            "tagwatch.yaml:4:28: repositories[0].paths[1]: \"../../etc\" must be a relative path that stays inside the repository",
        ]
    );
}

#[test]
fn flux_policy_must_find_its_image_repository() {
    assert_eq!(
        policy_problems(
            "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata: { name: app, namespace: apps }\nspec:\n  imageRepositoryRef: { name: app }\n  policy: { semver: { range: '>=1.0.0' } }\n"
        ),
        [
            "policies/p.yaml:5:31: spec.imageRepositoryRef.name: no ImageRepository apps:app in the policy paths"
        ]
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let problems = policy_problems("apiVersion: tagwatch.dev/v1alpha1\nspec: [unclosed\n");
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("policies/p.yaml:3:1: YAML syntax error: "),
        "{problems:?}"
    );
}

/// The committed fixture holds problems of every kind in two files; the binary prints them all at once
/// on stdout and exits 2.
#[test]
fn binary_prints_every_problem_at_once_and_exits_2() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate/many-problems");
    let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .args(["--config", "tagwatch.yaml", "validate"])
        .current_dir(&fixture)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = std::fs::read_to_string(fixture.join("expected.txt")).unwrap();
    assert_eq!(stdout, expected);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains(&format!("{} problems found", expected.lines().count()))
    );
}

/// The example config and policies of the repository validate.
#[test]
fn examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .args(["--config", "deploy/tagwatch.yaml", "validate"])
        .current_dir(root)
        .env_clear()
        .env("REG_PASSWORD", "x")
        .env("GIT_TOKEN", "x")
        .env("GH_TOKEN", "x")
        .env("REGISTRY_HOOK_TOKEN", "x")
        .env("GH_HOOK_SECRET", "x")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let environment = Environment::from_pairs([
        ("REG_PASSWORD", "x"),
        ("GIT_TOKEN", "x"),
        ("GH_TOKEN", "x"),
        ("REGISTRY_HOOK_TOKEN", "x"),
        ("GH_HOOK_SECRET", "x"),
    ]);
    let config = Config::load(Some(&root.join("deploy/tagwatch.yaml")), &environment).unwrap();
    let mut names: Vec<&str> = config.policies.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "api-main",
            "bitnami-redis",
            "flux-system:podinfo-flux",
            "nginx-alpine",
            "podinfo"
        ]
    );
    assert_eq!(
        config
            .policy_by_marker("flux-system:podinfo-flux")
            .unwrap()
            .image
            .name(),
        "ghcr.io/stefanprodan/podinfo"
    );
    assert_eq!(
        config.policy("podinfo-flux").unwrap().name,
        "flux-system:podinfo-flux"
    );
}

/// Without `--config` and without `tagwatch.yaml`, the config is empty and valid (README.md "Using it").
#[test]
fn missing_default_config_is_an_empty_config() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("validate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("no config file (empty config)"));
}

/// A wrong value is reported once, as a wrong value, not again as a missing rule.
#[test]
fn a_wrong_selection_rule_is_reported_once() {
    assert_eq!(
        policy_problems(&with_header("  semver: 5\n")),
        ["policies/p.yaml:7:11: spec.semver: expected a mapping, found an integer"]
    );
}

#[test]
fn a_window_that_never_opens_again_is_an_error() {
    assert_eq!(
        policy_problems(&with_header(
            "  semver: { range: ^1 }\n  windows: [{ schedule: \"0 0 9 1 1 * 2020\", duration: 1h }]\n",
        )),
        [
            "policies/p.yaml:8:25: spec.windows[0].schedule: cron schedule \"0 0 9 1 1 * 2020\" never fires again"
        ]
    );
}

#[test]
fn a_document_without_api_version_in_a_policy_path_is_an_error() {
    assert_eq!(
        policy_problems("kind: TagPolicy\nmetadata: { name: web }\n"),
        [
            "policies/p.yaml:1:1: apiVersion: missing: a policy document needs apiVersion: tagwatch.dev/v1alpha1 and kind: TagPolicy"
        ]
    );
}

const TWO_REPOSITORIES: &str = "repositories:\n  - name: prod\n    url: file:///srv/git/prod.git\n  - name: staging\n    url: file:///srv/git/staging.git\npolicies: [policies/]\n";

#[test]
fn policy_restricted_to_repositories_applies_only_to_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("tagwatch.yaml"), TWO_REPOSITORIES).unwrap();
    std::fs::write(
        dir.path().join("policies/p.yaml"),
        with_header("  semver: { range: ^1 }\n  repositories: [staging]\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: everywhere }\nspec: { image: nginx, semver: { range: ^2 } }\n"),
    )
    .unwrap();
    let config = Config::load(
        Some(&dir.path().join("tagwatch.yaml")),
        &Environment::default(),
    )
    .unwrap();
    let restricted = config.policy("web").unwrap();
    assert_eq!(restricted.repositories, ["staging"]);
    assert!(restricted.applies_to("staging"));
    assert!(!restricted.applies_to("prod"));
    let everywhere = config.policy("everywhere").unwrap();
    assert!(everywhere.repositories.is_empty());
    assert!(everywhere.applies_to("prod") && everywhere.applies_to("staging"));
}

#[test]
fn policy_naming_an_unknown_repository_is_reported_at_the_entry() {
    assert_eq!(
        problems(
            &[
                ("tagwatch.yaml", TWO_REPOSITORIES),
                (
                    "policies/p.yaml",
                    &with_header(
                        "  semver: { range: ^1 }\n  repositories:\n    - prod\n    - production\n    - prod\n"
                    )
                ),
            ],
            &[]
        ),
        [
            "policies/p.yaml:10:7: spec.repositories[1]: no repository named \"production\" in tagwatch.yaml (it lists prod, staging)",
            "policies/p.yaml:11:7: spec.repositories[2]: repository \"prod\" is listed twice",
        ]
    );
}

/// `promotion.from` must name a repository of tagwatch.yaml, not one the policy writes, and
/// `requireStatus` needs a forge on the upstream.
#[test]
fn promotion_from_an_unknown_or_own_repository_is_reported_at_from() {
    let found = problems(
        &[
            ("tagwatch.yaml", TWO_REPOSITORIES),
            (
                "policies/p.yaml",
                &with_header(
                    "  semver: { range: ^1 }\n  promotion: { from: qa, soak: 24h }\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: own }\nspec:\n  image: nginx\n  semver: { range: ^1 }\n  repositories: [prod]\n  promotion: { from: prod, soak: 1h, requireStatus: [acceptance] }\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: checked }\nspec:\n  image: redis\n  semver: { range: ^1 }\n  repositories: [prod]\n  promotion: { from: staging, soak: 1h, requireStatus: [acceptance] }\n",
                ),
            ),
        ],
        &[],
    );
    assert_eq!(
        found,
        [
            "policies/p.yaml:8:22: spec.promotion.from: no repository named \"qa\" in tagwatch.yaml",
            "policies/p.yaml:17:22: spec.promotion.from: \"prod\" is also in spec.repositories: a policy cannot promote from a repository it writes",
            "policies/p.yaml:26:22: spec.promotion.requireStatus: requireStatus is read from the forge of repository \"staging\", which has no writeBack.forge",
        ]
    );
}

/// Following `from` for one image must never come back: prod → staging → prod is a cycle.
#[test]
fn a_promotion_cycle_is_reported_at_from() {
    let found = problems(
        &[
            ("tagwatch.yaml", TWO_REPOSITORIES),
            (
                "policies/p.yaml",
                &with_header(
                    "  semver: { range: ^1 }\n  repositories: [prod]\n  promotion: { from: staging, soak: 1h }\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: back }\nspec:\n  image: nginx\n  semver: { range: ^1 }\n  repositories: [staging]\n  promotion: { from: prod, soak: 1h }\n",
                ),
            ),
        ],
        &[],
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("policies/p.yaml:9:22: spec.promotion.from: promotion of docker.io/library/nginx forms a cycle"),
        "{found:?}"
    );
}

/// The documented promotion setup validates.
#[test]
fn the_promotion_example_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .args(["--config", "examples/promotion/tagwatch.yaml", "validate"])
        .current_dir(root)
        .env_clear()
        .env("GIT_TOKEN", "x")
        .env("GH_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let environment = Environment::from_pairs([("GIT_TOKEN", "x"), ("GH_TOKEN", "x")]);
    let config = Config::load(
        Some(&root.join("examples/promotion/tagwatch.yaml")),
        &environment,
    )
    .unwrap();
    let prod = config.policy("api-prod").unwrap();
    let promotion = prod.promotion.as_ref().unwrap();
    assert_eq!(promotion.from, "staging");
    assert_eq!(promotion.require_status, ["acceptance"]);
    assert!(prod.applies_to("prod") && !prod.applies_to("staging"));
}

#[test]
fn leader_election_timings_must_nest() {
    assert_eq!(
        problems(
            &[(
                "tagwatch.yaml",
                "daemon:\n  leaderElection:\n    leaseDuration: 10s\n    renewDeadline: 10s\n    retryPeriod: 12s\n"
            )],
            &[]
        ),
        [
            "tagwatch.yaml:4:20: daemon.leaderElection.renewDeadline: must be shorter than leaseDuration (a leader steps down before its Lease can be taken)",
            "tagwatch.yaml:5:18: daemon.leaderElection.retryPeriod: must be shorter than renewDeadline",
        ]
    );
    assert_eq!(
        problems(
            &[(
                "tagwatch.yaml",
                "daemon:\n  leaderElection: { namespace: ops, leaseDuration: 15s }\n"
            )],
            &[]
        ),
        Vec::<String>::new()
    );
}
