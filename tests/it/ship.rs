//! Shipping (docs/deploy.md, docs/deploy.md): the container image that `deploy/image/build.sh` builds and
//! pushes, pulled back and run the way a runtime would run it (unpacked, chrooted, as the image's
//! user); and the Kubernetes install (`deploy/kubernetes`, the overlays, the ServiceMonitor
//! component) rendered by `kubectl kustomize`, every object validated against the Kubernetes OpenAPI
//! schema of its kind (`tests/kubernetes-api/`), hardened, and its config passing `tagwatch validate`.
//!
//! The image test builds the release binary (reused when it is up to date) at the lowest CPU priority,
//! so the tests running beside it keep their pace. It needs root (buildah's storage, `chroot`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::support::kube_schema::KubernetesSchemas;
use crate::support::ports::free_port;
use crate::support::registry::Registry;

/// The user the image runs as (deploy/image/rootfs.sh) and the pods run as (deploy/kubernetes).
const USER: u32 = 65532;
/// Where the install mounts the config, and the state volume (`daemon.stateDir`).
const CONFIG_FILE: &str = "/etc/tagwatch/tagwatch.yaml";
const STATE_DIR: &str = "/var/lib/tagwatch";
/// The Secret the workloads take every credential from; its values are never part of the install.
const CREDENTIALS_SECRET: &str = "tagwatch-credentials";
/// coreutils' chroot, by path: the commands run in the image get the image's `PATH`.
const CHROOT: &str = "/usr/sbin/chroot";

fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} did not start: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn head_commit() -> String {
    let output = run(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repository_root()));
    stdout(&output).trim().to_string()
}

// ---------------------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_image_runs_as_its_user_with_only_what_the_binary_needs() {
    let uid = stdout(&run(Command::new("id").arg("-u")));
    assert_eq!(
        uid.trim(),
        "0",
        "the image test needs root: buildah's vfs storage, umoci's owners and chroot"
    );
    let registry = Registry::plain().await;
    let reference = format!("{}/tagwatch:ship", registry.host);
    let source = "https://example.com/acme/tagwatch";

    // `nice`: the release build must not starve the tests running beside this one.
    let built = run(Command::new("nice")
        .args(["-n", "19"])
        .arg(repository_root().join("deploy/image/build.sh"))
        .arg(&reference)
        .env("TAGWATCH_SOURCE_URL", source));

    // What the registry holds: the digest build.sh reported, and the image config.
    let inspected = skopeo_json(&["inspect", "--tls-verify=false"], &reference);
    let digest = inspected["Digest"].as_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let revision = head_commit();
    assert_eq!(
        stdout(&built).lines().last().unwrap(),
        format!("pushed {reference}@{digest} (tagwatch {version}, commit {revision})")
    );
    let image = skopeo_json(&["inspect", "--tls-verify=false", "--config"], &reference);
    let config = &image["config"];
    assert_eq!(config["User"], json!(format!("{USER}:{USER}")));
    assert_eq!(config["Entrypoint"], json!(["tagwatch"]));
    assert_eq!(config["Cmd"], json!(["daemon"]));
    assert_eq!(config["WorkingDir"], json!("/etc/tagwatch"));
    assert_eq!(config["ExposedPorts"], json!({"8080/tcp": {}}));
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.source"], json!(source));
    assert_eq!(labels["org.opencontainers.image.revision"], json!(revision));
    assert_eq!(labels["org.opencontainers.image.version"], json!(version));
    assert_eq!(image["os"], json!("linux"));
    assert_eq!(
        image["rootfs"]["diff_ids"].as_array().unwrap().len(),
        1,
        "FROM scratch plus one layer"
    );
    let environment: Vec<(String, String)> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let (name, value) = entry.as_str().unwrap().split_once('=').unwrap();
            (name.to_string(), value.to_string())
        })
        .collect();

    // Pulled back and unpacked as a runtime would.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:ship", layout.display())));
    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:ship", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");

    // Exactly the binary, its libraries, CA certificates and the user database: no shell, no git.
    let files = regular_files(&rootfs);
    let fixed = [
        "etc/group",
        "etc/nsswitch.conf",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/local/bin/tagwatch",
    ];
    let libraries: Vec<&String> = files
        .iter()
        .filter(|file| !fixed.contains(&file.as_str()))
        .collect();
    for file in fixed {
        assert!(files.contains(file), "{file} is missing from the image");
    }
    for library in &libraries {
        let name = Path::new(library.as_str()).file_name().unwrap();
        assert!(
            library.starts_with("lib") && name.to_str().unwrap().contains(".so"),
            "{library} is neither the binary, a shared library, nor a file it needs"
        );
    }
    assert!(
        libraries.iter().any(|library| library.contains("ld-linux")),
        "the dynamic loader is in the image: {libraries:?}"
    );
    for absent in ["bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/git", "bin/git"] {
        assert!(
            std::fs::symlink_metadata(rootfs.join(absent)).is_err(),
            "{absent} must not be in the image"
        );
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|line| line
                == format!("tagwatch:x:{USER}:{USER}:tagwatch:{STATE_DIR}:/sbin/nologin")),
        "{passwd}"
    );
    let state = std::fs::metadata(rootfs.join(STATE_DIR.trim_start_matches('/'))).unwrap();
    assert_eq!((state.uid(), state.gid()), (USER, USER));
    assert_eq!(state.mode() & 0o7777, 0o700);

    // The install's config, where the ConfigMap is mounted.
    for file in ["tagwatch.yaml", "policies.yaml"] {
        std::fs::copy(
            repository_root().join("deploy/kubernetes").join(file),
            rootfs.join("etc/tagwatch").join(file),
        )
        .unwrap();
    }
    let in_image = |arguments: &[&str], extra: &[(&str, &str)]| {
        Command::new(CHROOT)
            .arg(format!("--userspec={USER}:{USER}"))
            .arg(&rootfs)
            .arg("tagwatch")
            .args(arguments)
            .env_clear()
            .envs(environment.iter().map(|(name, value)| (name, value)))
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    let version_output = in_image(&["--version"], &[]);
    assert!(version_output.status.success(), "{version_output:?}");
    assert_eq!(
        stdout(&version_output),
        format!("tagwatch {version} (commit {revision})\n")
    );
    let secrets = [("GIT_TOKEN", "t"), ("REGISTRY_HOOK_TOKEN", "t")];
    let validated = in_image(&["--config", CONFIG_FILE, "validate"], &secrets);
    assert!(validated.status.success(), "{validated:?}");
    assert_eq!(
        stdout(&validated),
        format!("{CONFIG_FILE}: ok (0 registries, 1 repositories, 1 policies)\n")
    );
    // The same config without one of its secrets is refused, naming it: the binary really read it.
    let refused = in_image(
        &["--config", CONFIG_FILE, "validate"],
        &[("REGISTRY_HOOK_TOKEN", "t")],
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(stdout(&refused).contains("GIT_TOKEN"), "{refused:?}");

    // The daemon as the pod runs it: it serves, reconciles a repository, keeps its state in the state
    // directory as its own user, and stops cleanly on SIGTERM. Dogfood: the repository is this
    // project's own Kubernetes install, whose image reference names an older tag of the image just
    // built; the daemon in the image moves it to the tag just pushed, and changes nothing else.
    let released = format!("{}/tagwatch:{version}", registry.host);
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("docker://{released}"),
    ]));
    let kustomization =
        std::fs::read_to_string(repository_root().join("deploy/kubernetes/kustomization.yaml"))
            .unwrap();
    let older = kustomization
        .replace(
            "newName: registry.example.com/platform/tagwatch",
            &format!("newName: {}/tagwatch", registry.host),
        )
        .replace("newTag: \"0.1.0\"", "newTag: \"0.0.1\"");
    assert_ne!(
        older, kustomization,
        "the install names the image as the test expects"
    );
    let mut install: Vec<(String, String)> =
        std::fs::read_dir(repository_root().join("deploy/kubernetes"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.file_name().unwrap() != "kustomization.yaml")
            .map(|path| {
                (
                    format!(
                        "deploy/kubernetes/{}",
                        path.file_name().unwrap().to_str().unwrap()
                    ),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect();
    install.push(("deploy/kubernetes/kustomization.yaml".into(), older.clone()));
    let files: Vec<(&str, String)> = install
        .iter()
        .map(|(path, text)| (path.as_str(), text.clone()))
        .collect();
    let fleet = crate::reconcile::bare_repo(&rootfs.join("srv"), "fleet", &files);
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{USER}:{USER}"))
        .arg(&fleet));
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        rootfs.join("etc/tagwatch/daemon.yaml"),
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n  - name: fleet\n    url: file:///srv/fleet.git\n    paths: [deploy/kubernetes]\n    writeBack: {{ mode: push }}\npolicies: [dogfood.yaml]\ndaemon:\n  listen: {listen}\n  stateDir: {STATE_DIR}\n",
            host = registry.host
        ),
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/tagwatch/dogfood.yaml"),
        format!(
            "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: tagwatch }}\nspec:\n  image: {}/tagwatch\n  semver: {{ range: \">=0.0.1\" }}\n",
            registry.host
        ),
    )
    .unwrap();
    let mut daemon = Command::new(CHROOT)
        .arg(format!("--userspec={USER}:{USER}"))
        .arg(&rootfs)
        .args([
            "tagwatch",
            "--config",
            "/etc/tagwatch/daemon.yaml",
            "daemon",
        ])
        .env_clear()
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let ready = format!("http://{listen}/readyz");
    let started = Instant::now();
    while !client
        .get(&ready)
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        if started.elapsed() > Duration::from_secs(60) || daemon.try_wait().unwrap().is_some() {
            let _ = daemon.kill();
            let output = daemon.wait_with_output().unwrap();
            panic!(
                "the daemon in the image never became ready: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ready means the first cycle ran: the install now names the tag just pushed, byte for byte.
    assert_eq!(
        crate::reconcile::show(&fleet, "deploy/kubernetes/kustomization.yaml"),
        older.replace("newTag: \"0.0.1\"", &format!("newTag: \"{version}\"")),
    );
    let store = std::fs::metadata(rootfs.join("var/lib/tagwatch/state.redb")).unwrap();
    assert_eq!((store.uid(), store.gid()), (USER, USER));
    // `chroot` execs tagwatch: the child's pid is the daemon's.
    run(Command::new("kill").args(["-TERM", &daemon.id().to_string()]));
    let output = daemon.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn skopeo_json(arguments: &[&str], reference: &str) -> Value {
    let output = run(Command::new("skopeo")
        .args(arguments)
        .arg(format!("docker://{reference}")));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every regular file under `root`, as a path relative to it.
fn regular_files(root: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(root).unwrap().to_path_buf();
                files.insert(relative.display().to_string());
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------------
// The Kubernetes install
// ---------------------------------------------------------------------------------------------------

/// Each way to install, with the kinds it renders.
const INSTALLS: &[(&str, &[&str])] = &[
    ("deploy/kubernetes", DAEMON_KINDS),
    ("deploy/overlays/push", DAEMON_KINDS),
    ("deploy/overlays/pull-request", DAEMON_KINDS),
    ("deploy/overlays/high-availability", DAEMON_KINDS),
    (
        "deploy/overlays/cronjob",
        &[
            "ConfigMap",
            "CronJob",
            "Namespace",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        ],
    ),
];

const DAEMON_KINDS: &[&str] = &[
    "ConfigMap",
    "Deployment",
    "Namespace",
    "NetworkPolicy",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
];

/// `kubectl kustomize DIRECTORY`, one JSON value per rendered object.
fn kustomize(directory: &Path) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(directory)
        .output()
        .expect("kubectl (with kustomize v5) is installed");
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed: {}",
        directory.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

fn render(install: &str) -> Vec<Value> {
    kustomize(&repository_root().join(install))
}

fn kinds(objects: &[Value]) -> BTreeSet<&str> {
    objects
        .iter()
        .map(|object| object["kind"].as_str().unwrap())
        .collect()
}

fn the<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let mut matching = objects.iter().filter(|object| object["kind"] == kind);
    let object = matching
        .next()
        .unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(matching.next().is_none(), "more than one {kind}");
    object
}

#[test]
fn every_install_renders_and_every_object_validates_against_its_kubernetes_schema() {
    let schemas = KubernetesSchemas::get();
    for (install, expected) in INSTALLS {
        let objects = render(install);
        assert_eq!(
            kinds(&objects),
            expected.iter().copied().collect(),
            "{install}"
        );
        for object in &objects {
            let problems = schemas.problems(object);
            assert!(problems.is_empty(), "{install}: {problems:#?}");
            if object["kind"] != "Namespace" {
                assert_eq!(object["metadata"]["namespace"], "tagwatch", "{install}");
            }
        }
    }
}

#[test]
fn the_servicemonitor_component_adds_a_valid_servicemonitor_for_the_metrics_port() {
    // A user's overlay: the push install plus the component, from outside the repository.
    let directory = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let up = relative(directory.path(), repository_root());
    std::fs::write(
        directory.path().join("kustomization.yaml"),
        format!(
            "resources:\n  - {}\ncomponents:\n  - {}\n",
            up.join("deploy/overlays/push").display(),
            up.join("deploy/components/servicemonitor").display()
        ),
    )
    .unwrap();
    let objects = kustomize(directory.path());
    let mut expected: BTreeSet<&str> = DAEMON_KINDS.iter().copied().collect();
    expected.insert("ServiceMonitor");
    assert_eq!(kinds(&objects), expected);
    let schemas = KubernetesSchemas::get();
    for object in &objects {
        let problems = schemas.problems(object);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    let monitor = the(&objects, "ServiceMonitor");
    let service = the(&objects, "Service");
    for (label, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][label], value);
    }
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http", "path": "/metrics", "interval": "30s"}])
    );
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    // The CRD's schema is as strict as the built-in ones.
    let mut misspelled = monitor.clone();
    misspelled["spec"]["endpoints"][0]["prot"] = json!("http");
    let problems = schemas.problems(&misspelled).join("\n");
    assert!(problems.contains("prot"), "{problems}");
}

#[test]
fn the_schemas_refuse_a_misspelled_field_and_a_wrong_type() {
    let schemas = KubernetesSchemas::get();
    let mut deployment = the(&render("deploy/kubernetes"), "Deployment").clone();
    assert!(schemas.problems(&deployment).is_empty());
    let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    container["securityContext"]["readOnlyRootFileSystem"] = json!(true);
    deployment["spec"]["replicas"] = json!("1");
    let problems = schemas.problems(&deployment).join("\n");
    assert!(problems.contains("readOnlyRootFileSystem"), "{problems}");
    assert!(problems.contains("/spec/replicas"), "{problems}");
}

/// The daemon's and the CronJob's pods: non-root as the image's user, read-only root filesystem, no
/// privilege escalation, no capabilities, seccomp `RuntimeDefault`, resources, the config mounted where
/// `--config` reads it and the state volume where `daemon.stateDir` points.
#[test]
fn every_workload_is_hardened_and_mounts_what_its_config_names() {
    for (install, _) in INSTALLS {
        let objects = render(install);
        let configuration = tagwatch_config(&objects);
        assert_eq!(configuration["daemon"]["stateDir"], STATE_DIR, "{install}");
        for object in &objects {
            let Some(pod) = pod_spec(object) else {
                continue;
            };
            let context = &pod["securityContext"];
            assert_eq!(context["runAsNonRoot"], true, "{install}");
            assert_eq!(context["runAsUser"], USER, "{install}");
            assert_eq!(context["runAsGroup"], USER, "{install}");
            assert_eq!(context["fsGroup"], USER, "{install}");
            assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
            let containers = pod["containers"].as_array().unwrap();
            assert_eq!(containers.len(), 1);
            let container = &containers[0];
            let context = &container["securityContext"];
            assert_eq!(context["runAsNonRoot"], true, "{install}");
            assert_eq!(context["runAsUser"], USER, "{install}");
            assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
            assert_eq!(context["allowPrivilegeEscalation"], false, "{install}");
            assert_eq!(context["readOnlyRootFilesystem"], true, "{install}");
            assert_eq!(context["privileged"], false, "{install}");
            assert_eq!(context["capabilities"], json!({"drop": ["ALL"]}));
            for field in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][field][resource].is_string(),
                        "{install}: resources.{field}.{resource}"
                    );
                }
            }
            let arguments = container["args"].as_array().unwrap();
            assert_eq!(arguments[..2], [json!("--config"), json!(CONFIG_FILE)]);
            let mounts = mounts(pod, container);
            let config_map = the(&objects, "ConfigMap")["metadata"]["name"].clone();
            assert_eq!(
                mounts["/etc/tagwatch"],
                json!({"configMap": {"name": config_map}}),
                "{install}"
            );
            assert!(
                mounts[STATE_DIR]["emptyDir"].is_object(),
                "{install}: the state volume"
            );
        }
    }
}

/// One daemon (no leader election yet), replaced rather than rolled, probed on its health endpoints
/// on the port it listens on, and given longer than its shutdown grace to drain.
#[test]
fn the_daemon_is_one_replica_probed_on_its_endpoints_with_a_grace_period_above_shutdown_grace() {
    for (install, replicas, strategy) in [
        ("deploy/kubernetes", 1, "Recreate"),
        ("deploy/overlays/push", 1, "Recreate"),
        ("deploy/overlays/pull-request", 1, "Recreate"),
        ("deploy/overlays/high-availability", 2, "RollingUpdate"),
    ] {
        let objects = render(install);
        let configuration = tagwatch_config(&objects);
        let deployment = the(&objects, "Deployment");
        assert_eq!(deployment["spec"]["replicas"], replicas, "{install}");
        assert_eq!(
            deployment["spec"]["strategy"]["type"], strategy,
            "{install}"
        );
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        // Every replica takes part in the election on the Lease its Role grants, as its pod.
        assert_eq!(
            configuration["daemon"]["leaderElection"]["name"], "tagwatch",
            "{install}"
        );
        for (variable, field) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            assert!(
                container["env"].as_array().unwrap().contains(&json!({
                    "name": variable,
                    "valueFrom": {"fieldRef": {"fieldPath": field}}
                })),
                "{install}: {variable}"
            );
        }
        assert_eq!(
            container["args"].as_array().unwrap().last(),
            Some(&json!("daemon"))
        );

        let listen: std::net::SocketAddr = configuration["daemon"]["listen"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            listen.ip().is_unspecified(),
            "{install}: reachable from outside the pod"
        );
        assert_eq!(
            container["ports"],
            json!([{"name": "http", "containerPort": listen.port(), "protocol": "TCP"}])
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": "http"})
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"],
            json!({"path": "/readyz", "port": "http"})
        );

        let grace =
            humantime::parse_duration(configuration["daemon"]["shutdownGrace"].as_str().unwrap())
                .unwrap();
        let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            termination > grace.as_secs() + 5,
            "{install}: terminationGracePeriodSeconds {termination} leaves no margin over shutdownGrace {grace:?}"
        );

        let service = the(&objects, "Service");
        assert_eq!(
            service["spec"]["ports"],
            json!([{"name": "http", "port": listen.port(), "targetPort": "http", "protocol": "TCP"}])
        );
        for (label, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&pod_labels(deployment)[label], value, "{install}");
        }
    }
}

/// Every env var a config names (`tokenEnv`, `passwordEnv`, `secretEnv`) is set by its workload from
/// the credentials Secret, and with them set the config passes `tagwatch validate`.
#[test]
fn every_config_in_the_install_passes_validate_with_the_env_vars_its_workload_sets() {
    let named = regex::Regex::new(r"\b[a-zA-Z]+Env:\s*([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    for (install, _) in INSTALLS {
        let objects = render(install);
        let config_map = the(&objects, "ConfigMap");
        let workload = objects
            .iter()
            .find(|object| pod_spec(object).is_some())
            .unwrap();
        let container = &pod_spec(workload).unwrap()["containers"][0];
        let from_secret: BTreeSet<String> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|variable| variable["valueFrom"]["fieldRef"].is_null())
            .map(|variable| {
                let reference = &variable["valueFrom"]["secretKeyRef"];
                assert_eq!(
                    reference["name"], CREDENTIALS_SECRET,
                    "{install}: {variable}"
                );
                variable["name"].as_str().unwrap().to_string()
            })
            .collect();
        let text = config_map["data"]["tagwatch.yaml"].as_str().unwrap();
        let names: BTreeSet<String> = named
            .captures_iter(text)
            .map(|captures| captures[1].to_string())
            .collect();
        assert!(!names.is_empty(), "{install}");
        assert_eq!(
            names, from_secret,
            "{install}: the config's env vars and the workload's"
        );

        let directory = tempfile::tempdir().unwrap();
        for (key, value) in config_map["data"].as_object().unwrap() {
            std::fs::write(directory.path().join(key), value.as_str().unwrap()).unwrap();
        }
        let config = directory.path().join("tagwatch.yaml");
        let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
            .arg("--config")
            .arg(&config)
            .arg("validate")
            .env_clear()
            .envs(names.iter().map(|name| (name, "not-a-real-secret")))
            .output()
            .unwrap();
        assert!(output.status.success(), "{install}: {output:?}");
        assert_eq!(
            stdout(&output),
            format!(
                "{}: ok (0 registries, 1 repositories, 1 policies)\n",
                config.display()
            ),
            "{install}"
        );
    }
}

/// kustomize rewrites RBAC `resourceNames` that equal a ConfigMap's name to its hashed name; the Lease
/// tagwatch renews must keep its own name.
#[test]
fn the_role_grants_the_lease_by_its_own_name() {
    for (install, _) in INSTALLS {
        let objects = render(install);
        let role = the(&objects, "Role");
        assert_eq!(
            role["rules"],
            json!([
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": ["tagwatch"],
                    "verbs": ["get", "update", "patch"]
                }
            ]),
            "{install}"
        );
        let binding = the(&objects, "RoleBinding");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "tagwatch", "namespace": "tagwatch"}])
        );
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    }
}

/// The `tagwatch.yaml` of the rendered ConfigMap, parsed.
fn tagwatch_config(objects: &[Value]) -> Value {
    let text = the(objects, "ConfigMap")["data"]["tagwatch.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn pod_spec(object: &Value) -> Option<&Value> {
    match object["kind"].as_str()? {
        "Deployment" => Some(&object["spec"]["template"]["spec"]),
        "CronJob" => Some(&object["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn pod_labels(object: &Value) -> &Value {
    &object["spec"]["template"]["metadata"]["labels"]
}

/// Mount path → the volume's source (the volume without its name).
fn mounts(pod: &Value, container: &Value) -> BTreeMap<String, Value> {
    let volumes: HashMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|volume| (volume["name"].as_str().unwrap(), volume))
        .collect();
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mount| {
            let mut source = volumes[mount["name"].as_str().unwrap()].clone();
            source.as_object_mut().unwrap().remove("name");
            (mount["mountPath"].as_str().unwrap().to_string(), source)
        })
        .collect()
}

/// The path from `from` to `to` (both absolute) with `..` components: kustomize refuses absolute paths.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component);
    }
    path
}
