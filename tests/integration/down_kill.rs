//! `provision down --purge` killed at random points of its wall-clock run and run again: it
//! converges, leaving nothing of the environment and writing nothing to any other.

use std::process::Stdio;
use std::time::Duration;

use provision::dice::Dice;
use provision::sandbox::{LatencyProfile, SandboxConfig};

use crate::down_cli::{World, text};

/// Kill delays are drawn between 0.1 s and this: about a whole `down --purge` of `local` under
/// `realistic` latency at [`KILL_TIME_SCALE`] (measured: about 1.2 s).
const DOWN_RUN_MS: u64 = 1_500;
/// The first kill comes before this: the sandbox's own delete operations take 30 s of sandbox
/// time (0.75 s at [`KILL_TIME_SCALE`]), so however fast the machine, the first run is still
/// going; later runs, with less left to do, may finish before their kill.
const FIRST_KILL_MS: u64 = 600;
const KILL_TIME_SCALE: f64 = 40.0;

/// `down --purge` killed `kills` times at random points of its wall-clock run, then run to the
/// end: nothing of the environment is left, soft-deleted or not, and the other environment got
/// no write at all.
async fn interrupted_downs_converge(seed: u64, kills: usize) {
    let world = World::with(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: KILL_TIME_SCALE,
        ..SandboxConfig::default()
    })
    .await;
    world.ok(&["up", "--env", "other"]).await;
    world.ok(&["up", "--env", "local"]).await;
    let lag = provision::clock::SignedDuration::from_secs(10);
    world.sandbox.advance(lag).unwrap();
    let other = world.arm_of("other");
    let from = world.sandbox.requests().len();
    let mut dice = Dice::new(seed);
    let mut kills_done: Vec<(Duration, bool)> = Vec::new();
    for kill in 0..kills {
        let bound = if kill == 0 {
            FIRST_KILL_MS
        } else {
            DOWN_RUN_MS
        };
        let delay = Duration::from_millis(100 + dice.roll() % (bound - 100));
        let program = assert_cmd::cargo::cargo_bin("provision");
        let mut child = std::process::Command::new(program)
            .current_dir(world.project.dir.path())
            .args(["--color", "never", "down", "--env", "local", "--purge"])
            .env_remove("RUST_LOG")
            .env_remove("PROVISION_AUTH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Real time on purpose: the point is to kill a separate process at an unforeseen moment
        // of its wall-clock run, which no move of the sandbox's clock can stand in for.
        tokio::time::sleep(delay).await;
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        kills_done.push((delay, running));
    }
    assert!(
        kills_done.iter().any(|(_, running)| *running),
        "seed {seed}: no kill interrupted a run: {kills_done:?}"
    );
    world.ok(&["down", "--env", "local", "--purge"]).await;
    assert!(
        world.arm_of("local").is_empty(),
        "seed {seed}: {kills_done:?}"
    );
    assert_eq!(
        world.leftovers("local"),
        (0, 0, 0),
        "seed {seed}: {kills_done:?}"
    );
    assert_eq!(world.arm_of("other"), other);
    for write in world.writes_since(from) {
        assert!(!write.contains("other"), "seed {seed}: {write}");
    }
    let again = world.ok(&["down", "--env", "local", "--purge"]).await;
    assert!(
        text(&again)
            .0
            .starts_with("environment local torn down: 0 removed, 0 purged")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_killed_at_random_points_converges_seed_1() {
    interrupted_downs_converge(1, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_killed_at_random_points_converges_seed_2() {
    interrupted_downs_converge(2, 5).await;
}
