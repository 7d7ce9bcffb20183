//! Runs every seed (`fuzz/seeds/<target>/`) and every kept crash input
//! (`fuzz/regressions/<target>/`) through its fuzz target's harness function,
//! on stable and without libFuzzer: a crash once found stays fixed, and the
//! harness itself keeps compiling and passing. A target without seeds, or a
//! fuzz target this list does not name, fails the test, so it cannot pass by
//! running nothing.

use std::path::{Path, PathBuf};

#[path = "../fuzz/harness.rs"]
mod harness;

type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("parse_github", harness::parse_github),
    ("parse_gitlab", harness::parse_gitlab),
    ("parse_standard", harness::parse_standard),
    ("parse_distribution", harness::parse_distribution),
    ("parse_harbor", harness::parse_harbor),
    ("parse_quay", harness::parse_quay),
    ("parse_dockerhub", harness::parse_dockerhub),
    ("parse_jfrog", harness::parse_jfrog),
    ("parse_nexus", harness::parse_nexus),
    ("parse_acr", harness::parse_acr),
    ("parse_ecr", harness::parse_ecr),
    ("parse_gar", harness::parse_gar),
    ("verify_github", harness::verify_github),
    ("verify_gitlab", harness::verify_gitlab),
    ("verify_standard", harness::verify_standard),
    ("verify_distribution", harness::verify_distribution),
    ("verify_harbor", harness::verify_harbor),
    ("verify_quay", harness::verify_quay),
    ("verify_dockerhub", harness::verify_dockerhub),
    ("verify_jfrog", harness::verify_jfrog),
    ("verify_nexus", harness::verify_nexus),
    ("verify_acr", harness::verify_acr),
    ("verify_ecr", harness::verify_ecr),
    ("verify_gar", harness::verify_gar),
    ("verify_gar_oidc", harness::verify_gar_oidc),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The input files of a directory (not dotfiles), sorted; `None` when it
/// does not exist.
fn inputs(dir: &Path) -> Option<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn every_fuzz_target_is_listed_here() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "fuzz/fuzz_targets and TARGETS differ");
}

#[test]
fn seeds_and_regressions_pass_their_harness() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, run) in TARGETS {
        let seeds = fuzz_dir().join("seeds").join(name);
        let mut files = match inputs(&seeds) {
            Some(files) if !files.is_empty() => files,
            Some(_) => {
                failures.push(format!("{}: no seed inputs", seeds.display()));
                continue;
            }
            None => {
                failures.push(format!("{}: missing", seeds.display()));
                continue;
            }
        };
        // Most targets never crashed: their regressions directory may be
        // absent, but one that exists must hold inputs.
        let regressions = fuzz_dir().join("regressions").join(name);
        match inputs(&regressions) {
            Some(kept) if kept.is_empty() => {
                failures.push(format!("{}: empty", regressions.display()));
            }
            Some(kept) => files.extend(kept),
            None => {}
        }
        for file in files {
            let data = std::fs::read(&file).expect("readable input");
            ran += 1;
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {message}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{ran} fuzz inputs passed across {} targets", TARGETS.len());
}
