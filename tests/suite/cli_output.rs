//! The command line's shape as a user and a log see it (issue 16, items 5 and 6): stats lines on
//! a pipe, `--log-file`, `-v`/`-q`, one `--format`/`--report`/`-j` on every command, sizes like
//! `1.5GiB`, check/verify without copy statistics, the measures in words, `watch` refusing what
//! it cannot honour, completions, and every command's help ending with examples.

use crate::backends::{write_demo, Backend, Env};
use crate::harness::{command, run_command, shardsync, Run};

/// `cmd SRC DST extra…` on local folders `src` and `dst` of `env`.
fn local_pair(env: &Env, cmd: &[&str], extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    a.push(env.url("src"));
    a.push(env.url("dst"));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A local source of `n` demo shards (plus nothing else).
async fn local_source(n: usize) -> Env {
    let env = Env::new(Backend::Local).await;
    write_demo(&env.open("src"), n, 2000, 16).await;
    env
}

/// The stats lines of a run's stderr, each checked to be well formed.
fn stats_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("stats: ")).collect();
    for l in &lines {
        let body = &l[l.find("stats: ").unwrap()..];
        for part in [" / ", "%), ", " objects, ", "/s, ETA ", " failed"] {
            assert!(body.contains(part), "malformed stats line (no {part:?}): {l}");
        }
        assert!(!l.contains('\x1b'), "a stats line with colour: {l:?}");
    }
    lines
}

#[tokio::test]
async fn on_a_pipe_sync_prints_periodic_stats_lines_and_quiet_silences_them() {
    let env = local_source(24).await;
    let log = env.tmp.path().join("sync.log");
    let log_arg = log.display().to_string();
    let r = shardsync(local_pair(
        &env,
        &["sync"],
        &["--stats", "1ms", "--log-file", &log_arg],
    ))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = stats_lines(&r.stderr);
    assert!(!lines.is_empty(), "no stats line on stderr: {}", r.stderr);
    assert!(lines.iter().any(|l| l.contains("stats: copying ")), "{lines:#?}");
    // The log file holds the same lines, without colour.
    let logged = std::fs::read_to_string(&log).expect("--log-file written");
    assert!(!stats_lines(&logged).is_empty(), "{logged}");

    // -q: no stats line, no warning; --stats 0: no stats line.
    let env = local_source(8).await;
    for extra in [["-q", "--stats", "1ms"], ["--stats", "0", "--full"]] {
        let r = shardsync(local_pair(&env, &["sync"], &extra)).await;
        assert_eq!(r.code, Some(0), "{extra:?}: {r:?}");
        assert!(
            !r.stderr.contains("stats: "),
            "{extra:?}: a stats line: {}",
            r.stderr
        );
    }
}

#[tokio::test]
async fn verbose_says_each_shards_decision_and_why() {
    let env = local_source(3).await;
    let r = shardsync(local_pair(&env, &["sync"], &[])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!r.stderr.contains("skip:"), "decisions without -v: {}", r.stderr);
    // One shard rewritten: -v names it as a copy and the others as skips.
    write_demo(&env.open("src"), 1, 2000, 99).await;
    let r = shardsync(local_pair(&env, &["sync", "-v"], &[])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let shard0 = shardsync::demo::shard_name(0);
    let shard1 = shardsync::demo::shard_name(1);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains(&shard0) && l.contains("copy: ")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains(&shard1) && l.contains("skip: same size and SHA-256")),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("request (attempt"),
        "requests are -vv: {}",
        r.stderr
    );
    // -vv: each request and each copy's outcome too.
    write_demo(&env.open("src"), 1, 2000, 98).await;
    let r = shardsync(local_pair(&env, &["sync", "-vv"], &[])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr.contains("commit manifest: request (attempt 1)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains(&shard0) && l.contains("copied and hashed in")),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn every_reporting_command_takes_format_json_markdown_and_report_file() {
    let env = local_source(3).await;
    let dir = env.tmp.path();
    let src = env.url("src");
    let dst = env.url("dst");
    let commands: [(&str, Vec<&str>); 5] = [
        ("build", vec!["manifest", "build", &src]),
        ("diff", vec!["diff", &src, &dst]),
        ("sync", vec!["sync", &src, &dst]),
        ("check", vec!["check", &src, &dst]),
        ("verify", vec!["verify", &dst]),
    ];
    for (name, args) in &commands {
        let json = dir.join(format!("{name}.json"));
        let md = dir.join(format!("{name}.md"));
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--format".into(),
            "json".into(),
            "--report".into(),
            json.display().to_string(),
        ]);
        let r = shardsync(&a).await;
        assert!(matches!(r.code, Some(0 | 1)), "{name}: {r:?}");
        let printed: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {}", r.stdout));
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).expect("report file")).expect("JSON file");
        assert!(printed.is_object() && written.is_object(), "{name}");

        // --json is --format json; a .md report file is Markdown.
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(["--json".into(), "--report".into(), md.display().to_string()]);
        let r = shardsync(&a).await;
        assert!(matches!(r.code, Some(0 | 1)), "{name}: {r:?}");
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap_or_else(|e| panic!("{name} --json: {e}"));
        let written = std::fs::read_to_string(&md).expect("markdown report");
        assert!(written.starts_with("### "), "{name}: {written}");

        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(["--format".into(), "markdown".into()]);
        let r = shardsync(&a).await;
        assert!(matches!(r.code, Some(0 | 1)), "{name}: {r:?}");
        assert!(r.stdout.starts_with("### "), "{name} markdown: {}", r.stdout);
    }
}

#[tokio::test]
async fn check_and_verify_show_no_copy_statistics_and_name_the_measures_in_words() {
    let env = local_source(3).await;
    let r = shardsync(local_pair(&env, &["sync"], &[])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("copied"),
        "a sync shows its copies: {}",
        r.stdout
    );
    for args in [
        local_pair(&env, &["check"], &[]),
        vec!["verify".into(), env.url("dst")],
    ] {
        let r = shardsync(&args).await;
        assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
        assert!(
            !r.stdout.contains("copied") && !r.stdout.contains("skipped") && !r.stdout.contains("deleted"),
            "{args:?}: copy statistics: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains("inconsistency C(A,B): 0.0% of shards differ"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("transfer cost E(A,B): "), "{}", r.stdout);
    }
}

#[tokio::test]
async fn sizes_accept_fractions_and_units_and_a_bad_size_is_exit_2() {
    let env = local_source(2).await;
    let r = shardsync(local_pair(
        &env,
        &["sync"],
        &[
            "--max-memory",
            "1.5GiB",
            "--part-size",
            "8MB",
            "--stripe-size",
            "4 MiB",
        ],
    ))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = shardsync(local_pair(&env, &["sync"], &["--max-memory", "1.5XB"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--max-memory"), "{}", r.stderr);
}

#[tokio::test]
async fn watch_refuses_flags_it_cannot_honour_and_writes_each_cycles_report() {
    let env = local_source(2).await;
    for extra in [vec!["--dry-run"], vec!["--format", "markdown"]] {
        let mut e = vec!["--cycles", "1"];
        e.extend(extra.iter().copied());
        let r = shardsync(local_pair(&env, &["watch"], &e)).await;
        assert_eq!(r.code, Some(2), "{extra:?}: {r:?}");
        assert!(r.stderr.contains(extra[0]), "{extra:?}: {}", r.stderr);
    }
    let report = env.tmp.path().join("watch.json");
    let report_arg = report.display().to_string();
    let r = shardsync(local_pair(
        &env,
        &["watch"],
        &["--cycles", "1", "--interval", "1s", "--report", &report_arg],
    ))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("watch --report")).unwrap();
    assert_eq!(v["command"], "sync", "{v}");
    assert_eq!(v["consistent"], true, "{v}");
}

#[tokio::test]
async fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let r = shardsync(["completions", shell]).await;
        assert_eq!(r.code, Some(0), "{shell}: {r:?}");
        for sub in ["sync", "check", "verify", "watch", "manifest", "completions"] {
            assert!(r.stdout.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let r = shardsync(["completions", "tcsh"]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[tokio::test]
async fn every_commands_help_ends_with_examples() {
    for args in [
        vec!["--help"],
        vec!["manifest", "build", "--help"],
        vec!["diff", "--help"],
        vec!["sync", "--help"],
        vec!["check", "--help"],
        vec!["verify", "--help"],
        vec!["watch", "--help"],
        vec!["demo", "--help"],
        vec!["remotes", "--help"],
        vec!["completions", "--help"],
    ] {
        let r = shardsync(&args).await;
        assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
        let (_, examples) = r
            .stdout
            .rsplit_once("Examples:\n")
            .unwrap_or_else(|| panic!("{args:?}: no Examples: {}", r.stdout));
        let lines: Vec<_> = examples
            .lines()
            .filter(|l| l.trim_start().starts_with("shardsync") || l.contains(" shardsync "))
            .collect();
        assert!((2..=3).contains(&lines.len()), "{args:?}: {examples}");
    }
    // -j: one default everywhere.
    for args in [["sync", "--help"], ["check", "--help"], ["diff", "--help"]] {
        let r = shardsync(args).await;
        assert!(r.stdout.contains("[default: 64]"), "{args:?}: {}", r.stdout);
    }
}

/// `--progress` on a pipe draws the bars, and the demo clears them before it prints: after the
/// last clear nothing of a bar is left on the screen.
#[tokio::test]
async fn demo_with_forced_bars_leaves_none_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command([
        "demo",
        &dir.path().display().to_string(),
        "--shards",
        "6",
        "--rows",
        "8000",
        "--progress",
    ]);
    c.env("NO_COLOR", "1");
    let r: Run = run_command(c).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("objects"), "no bars drawn: {:?}", r.stderr);
    let last_clear = r.stderr.rfind("\x1b[2K").expect("bars cleared");
    let after = &r.stderr[last_clear..];
    assert!(
        !after.contains("objects") && !after.contains("ETA"),
        "a bar is left after the last clear: {after:?}"
    );
    assert!(r.stdout.contains("CONSISTENT"), "{}", r.stdout);
}

/// A library warning (a source symlink skipped) over the cycles of `watch` is printed once, as
/// `warning: …` like the binary's own (each distinct message once per run: see
/// `logging::tests`); `-q` prints none, and errors still, also into `--log-file`.
#[cfg(unix)]
#[tokio::test]
async fn a_library_warning_is_printed_once_as_warning_and_quiet_silences_it() {
    let env = local_source(2).await;
    let link = env.tmp.path().join("src").join("notes.txt");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    let watch = ["--cycles", "2", "--interval", "10ms"];
    let r = shardsync(local_pair(&env, &["watch"], &watch)).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("cycle ")).count(),
        2,
        "{r:?}"
    );
    let warned: Vec<_> = r.stderr.lines().filter(|l| l.contains("is a symlink")).collect();
    assert_eq!(warned.len(), 1, "{}", r.stderr);
    assert!(warned[0].starts_with("warning: "), "{}", warned[0]);

    let r = shardsync(local_pair(&env, &["watch", "-q"], &watch)).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!r.stderr.contains("symlink"), "-q: {}", r.stderr);
    // An overlapping destination is refused: the error still shows under -q.
    let inside = format!("{}/inside", env.url("src"));
    let log = env.tmp.path().join("failed.log");
    let log_arg = log.display().to_string();
    let r = shardsync(["sync", "-q", "--log-file", &log_arg, &env.url("src"), &inside]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("error"), "-q keeps errors: {}", r.stderr);
    let logged = std::fs::read_to_string(&log).expect("--log-file");
    assert!(
        logged.contains("shardsync: error: "),
        "the log ends with the error: {logged}"
    );
}
