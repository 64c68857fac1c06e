//! Subprocess tools and the self-healing router, run against real python3 scripts written into a
//! temporary directory (and the calculator tool of the react example).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentc_runtime::tools::{
    BreakerConfig, BreakerState, FailureKind, OutputFormat, ToolFailure, ToolRouter, ToolRunner,
    ToolSpec,
};
use agentc_runtime::{Error, ToolCall};
use serde_json::{Value, json};

/// A time limit short enough for a quick test and long enough for python3 to start on a busy
/// 2-core machine.
const HANG_TIMEOUT_MS: u64 = 1500;
/// Loose upper bound on how long a timed-out call may take in all (limit + kill + reap).
const HANG_BOUND: Duration = Duration::from_secs(6);

/// Scripts of the tests; each reads its arguments from stdin.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "echo.py",
        "import json, sys\nargs = json.load(sys.stdin)\njson.dump({'got': args}, sys.stdout)\n",
    ),
    (
        "fail.py",
        "import sys\nsys.stdin.read()\nprint('something broke', file=sys.stderr)\nsys.exit(3)\n",
    ),
    (
        "hang.py",
        "import json, subprocess, sys, time\nargs = json.load(sys.stdin)\n\
         marker = str(args.get('marker', 60))\n\
         subprocess.Popen(['sleep', marker])\n\
         subprocess.Popen(['sleep', marker], start_new_session=True)\ntime.sleep(60)\n",
    ),
    (
        "flood.py",
        "import sys\nline = 'x' * 1023 + '\\n'\nwhile True:\n    sys.stdout.write(line)\n",
    ),
    ("invalid.py", "print('not json')\n"),
    ("text.py", "print('hello tools')\n"),
    (
        "env.py",
        "import json, os, sys\njson.dump({'env': sorted(os.environ), 'cwd': os.getcwd(), \
         'home': os.environ.get('HOME'), 'files': os.listdir('.')}, sys.stdout)\n",
    ),
    (
        "count.py",
        "import json, os, sys\nargs = json.load(sys.stdin)\n\
         open(args['log'], 'a').write(sys.argv[1] + '\\n')\n\
         if os.path.exists(args['healed']):\n    json.dump({'by': sys.argv[1]}, sys.stdout)\n\
         else:\n    sys.exit(1)\n",
    ),
    (
        "hog.py",
        "import sys\nsys.stdin.read()\nblob = bytearray(4 << 30)\nprint('allocated')\n",
    ),
    (
        "scribble.py",
        "import sys\nsys.stdin.read()\nf = open('big', 'wb')\nfor _ in range(200):\n    \
         f.write(b'x' * (1 << 20))\nf.close()\nprint('{}')\n",
    ),
    (
        "net.py",
        "import json, socket, sys\nargs = json.load(sys.stdin)\n\
         socket.create_connection(('127.0.0.1', args['port']), timeout=5).close()\n\
         print('{\"connected\": true}')\n",
    ),
    (
        "refuse.py",
        "import json, sys\nsys.stdin.read()\njson.dump({'error': 'not a number'}, sys.stdout)\n\
         sys.exit(1)\n",
    ),
    (
        "answer.py",
        "import json, sys\nsys.stdin.read()\njson.dump({'by': sys.argv[1]}, sys.stdout)\n",
    ),
    (
        "escape.py",
        "import json, os, sys\nargs = json.load(sys.stdin)\nout = {}\n\
         def attempt(name, f):\n    try:\n        f()\n        out[name] = 'ok'\n    \
         except OSError as e:\n        out[name] = type(e).__name__\n\
         attempt('read_passwd', lambda: open('/etc/passwd').read())\n\
         attempt('write_outside', lambda: open(args['outside'], 'w').write('x'))\n\
         attempt('list_project', lambda: os.listdir(args['project']))\n\
         attempt('read_declared', lambda: open(args['declared']).read())\n\
         attempt('write_own', lambda: open('mine.txt', 'w').write('x'))\n\
         json.dump(out, sys.stdout)\n",
    ),
];

struct Fixture {
    dir: tempfile::TempDir,
    runner: ToolRunner,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tools")).expect("mkdir");
        // What the tests' tools may write besides their own directory (declared with
        // `writes`): a tool reaches nothing else.
        std::fs::create_dir(dir.path().join("shared")).expect("mkdir");
        for (name, body) in SCRIPTS {
            std::fs::write(dir.path().join("tools").join(name), body).expect("script");
        }
        let runner = ToolRunner::new(dir.path()).expect("runner");
        Self { dir, runner }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tool(&self, name: &str, script: &str, extra: &[&str]) -> ToolSpec {
        let script = format!("tools/{script}");
        let mut command = vec!["python3", script.as_str()];
        command.extend_from_slice(extra);
        ToolSpec::subprocess(name, &command)
    }

    async fn run(&self, spec: &ToolSpec, args: Value) -> Result<Value, ToolFailure> {
        self.runner.run(spec, &args).await
    }
}

/// `spec` with read and write access to the fixture's `shared` directory.
fn shared(mut spec: ToolSpec) -> ToolSpec {
    spec.writes = vec!["shared".into()];
    spec
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test]
async fn successful_call_gets_arguments_on_stdin() {
    let f = Fixture::new();
    let out = f
        .run(&f.tool("echo", "echo.py", &[]), json!({"q": "hi", "n": 2}))
        .await;
    assert_eq!(out, Ok(json!({"got": {"q": "hi", "n": 2}})));
}

#[tokio::test]
async fn non_zero_exit_carries_status_and_stderr() {
    let f = Fixture::new();
    let err = f
        .run(&f.tool("fail", "fail.py", &[]), json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Exit);
    assert_eq!(err.to_string(), "exited with exit code 3: something broke");
}

fn process_gone(pid: &str) -> bool {
    // A killed orphan may stay a zombie for a moment until init reaps it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// The command lines (arguments joined by spaces) of the live processes whose command line
/// contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| !process_gone(&e.file_name().to_string_lossy()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|line| line.contains(needle))
        .collect()
}

/// On a timeout the tool and everything it started are killed: its children, and one that left
/// its process group with `setsid` (the tool runs as the init of a PID namespace of its own).
#[tokio::test]
async fn hanging_tool_is_killed_with_every_descendant() {
    let f = Fixture::new();
    let mut spec = f.tool("hang", "hang.py", &[]);
    spec.timeout_ms = HANG_TIMEOUT_MS;
    // A sleep length no other process on the machine uses.
    let marker = format!("61.{}", std::process::id());
    let script = f.path("tools/hang.py").display().to_string();
    let runner = f.runner.clone();
    let args = json!({"marker": marker});
    let started = Instant::now();
    let call = tokio::spawn(async move { runner.run(&spec, &args).await });
    let sleeps = format!("sleep {marker}");
    let deadline = Instant::now() + HANG_BOUND;
    while processes_with(&sleeps).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        processes_with(&sleeps),
        [sleeps.clone(), sleeps.clone()],
        "the tool started its two sleeps"
    );
    assert_eq!(processes_with(&script).len(), 1, "the tool runs");
    let err = call.await.expect("joins").unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        err,
        ToolFailure::Timeout {
            ms: HANG_TIMEOUT_MS
        }
    );
    assert_eq!(
        err.to_string(),
        format!("timed out after {HANG_TIMEOUT_MS} ms")
    );
    assert!(
        elapsed >= Duration::from_millis(HANG_TIMEOUT_MS),
        "{elapsed:?}"
    );
    assert!(elapsed < HANG_BOUND, "took {elapsed:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !(processes_with(&sleeps).is_empty() && processes_with(&script).is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(processes_with(&sleeps), Vec::<String>::new());
    assert_eq!(processes_with(&script), Vec::<String>::new());
}

#[tokio::test]
async fn flooding_stdout_is_capped_and_killed() {
    let f = Fixture::new();
    let mut spec = f.tool("flood", "flood.py", &[]);
    spec.max_output_bytes = 4096;
    let started = Instant::now();
    let err = f.run(&spec, json!({})).await.unwrap_err();
    assert_eq!(err, ToolFailure::OutputTooLarge { limit: 4096 });
    assert_eq!(err.to_string(), "wrote more than 4096 bytes");
    assert!(started.elapsed() < HANG_BOUND);
}

#[tokio::test]
async fn invalid_json_is_an_error_with_a_snippet() {
    let f = Fixture::new();
    let err = f
        .run(&f.tool("bad", "invalid.py", &[]), json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "returned invalid JSON (expected ident at line 1 column 2): \"not json\""
    );
    assert_eq!(err.kind(), FailureKind::InvalidOutput);
}

#[tokio::test]
async fn text_tools_return_their_output() {
    let f = Fixture::new();
    let mut spec = f.tool("text", "text.py", &[]);
    spec.output = OutputFormat::Text;
    assert_eq!(f.run(&spec, json!({})).await, Ok(json!("hello tools\n")));
}

/// The interpreter itself: `python3` on PATH may be a wrapper script (pyenv's shim) that adds
/// variables of its own to the environment.
fn python_executable() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[tokio::test]
async fn environment_is_scrubbed_and_directory_is_fresh() {
    let f = Fixture::new();
    let python = python_executable();
    let spec = ToolSpec::subprocess("env", &[python.as_str(), "tools/env.py"]);
    let out = f.run(&spec, json!({})).await.expect("runs");
    let mut env: Vec<&str> = out["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    // Python sets LC_CTYPE itself when it coerces a C locale.
    env.retain(|k| *k != "LC_CTYPE");
    assert_eq!(env, ["HOME", "LANG", "PATH", "TMPDIR"]);
    let cwd = out["cwd"].as_str().expect("cwd");
    assert_eq!(out["home"].as_str(), Some(cwd));
    assert_eq!(out["files"], json!([]));
    assert_ne!(Path::new(cwd), f.dir.path());
    assert!(
        !Path::new(cwd).exists(),
        "the working directory is removed after the call"
    );
}

#[tokio::test]
async fn arguments_must_be_an_object() {
    let f = Fixture::new();
    let err = f
        .run(&f.tool("echo", "echo.py", &[]), json!([1, 2]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "got invalid arguments: arguments must be a JSON object, not [1,2]"
    );
}

#[tokio::test]
async fn missing_program_is_a_spawn_failure() {
    let f = Fixture::new();
    let spec = ToolSpec::subprocess("ghost", &["agentc-no-such-program"]);
    let err = f.run(&spec, json!({})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not be started: agentc-no-such-program: No such file or directory (os error 2)"
    );
}

#[tokio::test]
async fn calculator_example_tool_runs_through_the_runner() {
    let runner = ToolRunner::new(&repo_root().join("examples")).expect("runner");
    let spec = ToolSpec::subprocess("calculator", &["python3", "tools/calculator.py"]);
    let out = runner
        .run(&spec, &json!({"expression": "(3 + 4) * 2"}))
        .await;
    assert_eq!(out, Ok(json!({"value": 14})));
    let out = runner
        .run(&spec, &json!({"expression": "2 ** 0.5"}))
        .await
        .expect("runs");
    assert!((out["value"].as_f64().expect("float") - 2f64.sqrt()).abs() < 1e-12);
    let err = runner
        .run(&spec, &json!({"expression": "1 / 0"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exited with exit code 1: {\"error\": \"ZeroDivisionError: division by zero\"}"
    );
    let err = runner
        .run(&spec, &json!({"expression": "__import__('os')"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exited with exit code 1: {\"error\": \"ValueError: only arithmetic is allowed\"}"
    );
}

fn router(specs: Vec<ToolSpec>, f: &Fixture, config: BreakerConfig) -> ToolRouter {
    ToolRouter::new(specs, f.runner.clone(), config).expect("router")
}

fn with(mut spec: ToolSpec, cost: f64, fallbacks: &[&str]) -> ToolSpec {
    spec.cost = cost;
    spec.fallbacks = fallbacks.iter().map(|s| s.to_string()).collect();
    spec
}

#[tokio::test]
async fn failure_reroutes_to_the_cheapest_healthy_fallback() {
    let f = Fixture::new();
    let r = router(
        vec![
            with(f.tool("primary", "fail.py", &[]), 1.0, &["pricey", "cheap"]),
            with(f.tool("pricey", "answer.py", &["pricey"]), 5.0, &[]),
            with(f.tool("cheap", "answer.py", &["cheap"]), 2.0, &[]),
        ],
        &f,
        BreakerConfig::default(),
    );
    let call: ToolCall = r.call("primary", &json!({})).await.expect("rerouted");
    assert_eq!(call.tool, "cheap");
    assert_eq!(call.value, json!({"by": "cheap"}));
    assert_eq!(call.failed.len(), 1);
    assert_eq!(
        call.failed[0].to_string(),
        "primary exited with exit code 3: something broke"
    );
    let m = r.metrics().snapshot();
    assert_eq!(m["primary"].calls, 1);
    assert_eq!(m["primary"].failures_of(FailureKind::Exit), 1);
    assert_eq!(m["primary"].reroutes, 1);
    assert_eq!((m["cheap"].calls, m["cheap"].successes), (1, 1));
    assert_eq!(m["pricey"].calls, 0);
}

#[test]
fn route_orders_tools_by_shortest_fallback_path() {
    let f = Fixture::new();
    let r = router(
        vec![
            with(f.tool("a", "fail.py", &[]), 1.0, &["b", "c"]),
            with(f.tool("b", "fail.py", &[]), 1.0, &["d"]),
            with(f.tool("c", "fail.py", &[]), 5.0, &[]),
            with(f.tool("d", "fail.py", &[]), 1.5, &["a"]),
            with(f.tool("unreachable", "fail.py", &[]), 0.1, &[]),
        ],
        &f,
        BreakerConfig::default(),
    );
    // a->b costs 1, a->b->d 2.5, a->c 5.
    assert_eq!(r.route("a").expect("route"), ["a", "b", "d", "c"]);
    assert_eq!(r.route("d").expect("route"), ["d", "a", "b", "c"]);
    assert_eq!(
        r.route("nope").unwrap_err().to_string(),
        "no tool named nope is declared"
    );
}

#[test]
fn undeclared_fallbacks_and_bad_costs_are_refused() {
    let f = Fixture::new();
    let err = ToolRouter::new(
        vec![with(f.tool("a", "fail.py", &[]), 1.0, &["ghost"])],
        f.runner.clone(),
        BreakerConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tools: tool a names fallback ghost, which is not declared"
    );
    let err = ToolRouter::new(
        vec![with(f.tool("a", "fail.py", &[]), f64::NAN, &[])],
        f.runner.clone(),
        BreakerConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tools: tool a has cost NaN; costs must be finite and not negative"
    );
}

#[tokio::test]
async fn breaker_opens_after_repeated_failures_and_half_opens_after_cool_down() {
    let f = Fixture::new();
    let log = f.path("shared/calls.log");
    let healed = f.path("shared/healed");
    let args =
        json!({"log": log.to_str().expect("utf-8"), "healed": healed.to_str().expect("utf-8")});
    // Long enough that the backup's run after the breaker opens cannot outlast it on a busy
    // machine.
    let cool_down = Duration::from_secs(3);
    let r = router(
        vec![
            with(
                shared(f.tool("flaky", "count.py", &["flaky"])),
                1.0,
                &["backup"],
            ),
            with(f.tool("backup", "answer.py", &["backup"]), 3.0, &[]),
        ],
        &f,
        BreakerConfig {
            failure_threshold: 2,
            cool_down,
        },
    );
    for _ in 0..2 {
        assert_eq!(r.call("flaky", &args).await.expect("backup").tool, "backup");
    }
    assert_eq!(r.breaker_state("flaky"), Some(BreakerState::Open));
    // Open: flaky is not called at all.
    let call = r.call("flaky", &args).await.expect("backup");
    assert_eq!(call.tool, "backup");
    assert_eq!(
        call.failed[0].to_string(),
        "flaky was skipped: its circuit breaker is open"
    );
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "flaky\nflaky\n"
    );
    let m = r.metrics().snapshot();
    assert_eq!(m["flaky"].calls, 2);
    assert_eq!(m["flaky"].breaker_opens, 1);
    assert_eq!(m["flaky"].failures_of(FailureKind::Exit), 2);
    assert_eq!(m["flaky"].failures_of(FailureKind::BreakerOpen), 1);
    assert_eq!(m["flaky"].reroutes, 3);
    assert_eq!(m["backup"].successes, 3);

    // After the cool-down one trial call goes through; the tool has recovered, so it closes.
    std::fs::write(&healed, "").expect("heal");
    tokio::time::sleep(cool_down).await;
    let call = r.call("flaky", &args).await.expect("flaky answers");
    assert_eq!(call.tool, "flaky");
    assert!(call.failed.is_empty());
    assert_eq!(r.breaker_state("flaky"), Some(BreakerState::Closed));
}

/// Every tool process runs under memory and file-size limits: allocating 4 GiB fails inside the
/// tool, writing 200 MiB fails past 64 MiB; the call fails with what happened.
#[tokio::test]
async fn tools_run_under_memory_and_file_size_limits() {
    let f = Fixture::new();
    let err = f
        .run(&f.tool("hog", "hog.py", &[]), json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MemoryError"), "{err}");
    assert!(err.is_health_failure());
    let err = f
        .run(&f.tool("scribble", "scribble.py", &[]), json!({}))
        .await
        .unwrap_err();
    // Python ignores SIGXFSZ, so the write fails with EFBIG instead of killing it.
    assert!(err.to_string().contains("File too large"), "{err}");
}

/// A subprocess tool runs without network unless it declares `network: true`.
#[tokio::test]
async fn tools_have_no_network_unless_they_declare_it() {
    let f = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("address").port();
    let args = json!({"port": port});
    let mut tool = f.tool("net", "net.py", &[]);
    let err = f.run(&tool, args.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Network is unreachable") || text.contains("Connection refused"),
        "{text}"
    );
    tool.network = true;
    assert_eq!(f.run(&tool, args).await, Ok(json!({"connected": true})));
}

/// The tool protocol's refusal (`{"error": ...}` and a non-zero exit) is the tool answering
/// one caller's bad input: it never opens the breaker, so one client cannot switch a tool off for
/// everyone. Timeouts are the tool being unhealthy: three open it.
#[tokio::test]
async fn refused_input_leaves_the_breaker_closed_and_timeouts_open_it() {
    let f = Fixture::new();
    let config = BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_secs(60),
    };
    let mut slow = f.tool("slow", "hang.py", &[]);
    slow.timeout_ms = 300;
    let r = router(vec![f.tool("strict", "refuse.py", &[]), slow], &f, config);
    for _ in 0..5 {
        let err = r.call("strict", &json!({"x": 1})).await.unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }
    assert_eq!(r.breaker_state("strict"), Some(BreakerState::Closed));
    let m = r.metrics().snapshot();
    assert_eq!(m["strict"].calls, 5);
    assert_eq!(m["strict"].failures_of(FailureKind::Exit), 5);
    assert_eq!(m["strict"].breaker_opens, 0);

    let args = json!({});
    for _ in 0..3 {
        let err = r.call("slow", &args).await.unwrap_err();
        assert!(err.to_string().contains("timed out after 300 ms"), "{err}");
    }
    assert_eq!(r.breaker_state("slow"), Some(BreakerState::Open));
    let err = r.call("slow", &args).await.unwrap_err();
    assert!(err.to_string().contains("circuit breaker is open"), "{err}");
}

#[tokio::test]
async fn all_failing_lists_every_attempt() {
    let f = Fixture::new();
    let mut hang = with(f.tool("slow", "hang.py", &[]), 2.0, &[]);
    hang.timeout_ms = HANG_TIMEOUT_MS;
    let r = router(
        vec![
            with(f.tool("first", "fail.py", &[]), 1.0, &["slow", "garbled"]),
            hang,
            with(f.tool("garbled", "invalid.py", &[]), 1.0, &[]),
        ],
        &f,
        BreakerConfig::default(),
    );
    let err = r.call("first", &json!({})).await.unwrap_err();
    assert!(matches!(err, Error::ToolsExhausted { ref attempts, .. } if attempts.len() == 3));
    assert_eq!(
        err.to_string(),
        format!(
            "tool first failed and no fallback is left; attempts: first exited with exit code 3: \
             something broke; garbled returned invalid JSON (expected ident at line 1 column 2): \
             \"not json\"; slow timed out after {HANG_TIMEOUT_MS} ms"
        )
    );
}

/// A subprocess tool reads only the system's programs, its command and what it declares, and
/// writes only its own directory and what it declares (Landlock).
#[tokio::test]
async fn tools_are_confined_to_their_own_and_declared_files() {
    let f = Fixture::new();
    std::fs::write(f.path("shared/data.txt"), "declared").unwrap();
    let mut spec = f.tool("escape", "escape.py", &[]);
    spec.reads = vec!["shared/data.txt".into()];
    let outside = f.path("outside.txt");
    let args = json!({
        "outside": outside.to_str().unwrap(),
        "project": f.path("").to_str().unwrap(),
        "declared": f.path("shared/data.txt").to_str().unwrap(),
    });
    let got = f.run(&spec, args.clone()).await.expect("the tool answers");
    assert_eq!(
        got,
        json!({
            "read_passwd": "PermissionError",
            "write_outside": "PermissionError",
            "list_project": "PermissionError",
            "read_declared": "ok",
            "write_own": "ok",
        })
    );
    assert!(!outside.exists());

    // `confine: false` (for kernels or containers without Landlock) lifts it.
    spec.confine = false;
    let got = f.run(&spec, args).await.expect("the tool answers");
    assert_eq!(
        got,
        json!({
            "read_passwd": "ok",
            "write_outside": "ok",
            "list_project": "ok",
            "read_declared": "ok",
            "write_own": "ok",
        })
    );
}
