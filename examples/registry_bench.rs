//! Drives tagwatch's registry client for `bench/poll.sh` (not part of the user-facing CLI).
//!
//! ```text
//! registry_bench seed URL PREFIX REPOS TAGS PARALLEL   # push REPOS repositories × TAGS tags over the HTTP API
//! registry_bench poll HOST PREFIX REPOS CONCURRENCY RUNS   # time full listings of every repository
//! registry_bench urls URL PREFIX REPOS                 # the same tags/list URLs, one per line (for wrk)
//! ```

#[path = "../tests/it/support/seed.rs"]
mod seed;

use std::time::Instant;

use tagwatch::environment::Environment;
use tagwatch::reference::ImageReference;
use tagwatch::registry::{RegistryClient, RegistrySettings};
use tagwatch::source::TagSource;

fn repository(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:04}")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize| -> usize { args[index].parse().expect("a number") };
    match args.first().map(String::as_str) {
        Some("seed") => seed_all(&args[1], &args[2], number(3), number(4), number(5)).await,
        Some("poll") => poll(&args[1], &args[2], number(3), number(4), number(5)).await,
        Some("urls") => {
            for index in 1..=number(3) {
                println!("{}/v2/{}/tags/list", args[1], repository(&args[2], index));
            }
        }
        _ => {
            eprintln!("usage: registry_bench seed|poll|urls … (see the source)");
            std::process::exit(2);
        }
    }
}

async fn seed_all(url: &str, prefix: &str, repositories: usize, tags: usize, parallel: usize) {
    let seeder = seed::Seeder::new(url, None, seed::SeedAuth::Anonymous);
    let started = Instant::now();
    for index in 1..=repositories {
        let name = repository(prefix, index);
        let manifest = seeder
            .image_manifest(&name, "2024-01-01T00:00:00Z", "amd64")
            .await;
        let tag_names = (0..tags).map(|tag| format!("1.0.{tag}")).collect();
        seeder.tag_all(&name, manifest, tag_names, parallel).await;
    }
    eprintln!(
        "seeded {repositories} × {tags} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn poll(host: &str, prefix: &str, repositories: usize, concurrency: usize, runs: usize) {
    let mut settings = RegistrySettings::anonymous(host);
    settings.insecure = true;
    settings.max_concurrency = concurrency;
    let images: Vec<ImageReference> = (1..=repositories)
        .map(|index| {
            ImageReference::parse(&format!("{host}/{}", repository(prefix, index))).unwrap()
        })
        .collect();
    for run in 1..=runs {
        // A fresh client per run: every run pays for its own connections, as a daemon's first cycle does.
        let client = RegistryClient::new(vec![settings.clone()], &Environment::default()).unwrap();
        let started = Instant::now();
        let mut listings = tokio::task::JoinSet::new();
        for image in &images {
            let (client, image) = (client.clone(), image.clone());
            listings.spawn(async move { client.list_tags(&image).await });
        }
        let mut tags = 0usize;
        while let Some(result) = listings.join_next().await {
            tags += result.unwrap().expect("listing").len();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!("run={run} repositories={repositories} tags={tags} seconds={elapsed:.4}");
    }
}
