//! What a CI agent gives a job, made locally: a checkout of the repository (environments/,
//! templates/ and the committed policies, pointed at the test sandbox), an artifact store shared
//! by the runs, a fresh workspace, temp dir and home per job, and `cargo` on the PATH as a shim
//! whose `cargo install … provision` puts the test's own binary where cargo would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use provision::sandbox::Sandbox;
use serde_json::Value;

use crate::project::manifest_dir;

/// A step may run this long before it is killed (`timeout`): a hung step fails the test instead
/// of hanging it.
const STEP_SECONDS: u32 = 300;

pub struct Bench {
    pub dir: tempfile::TempDir,
    /// The repository as committed, copied into a job's workspace by its checkout step.
    pub checkout: PathBuf,
    /// `artifacts/<run id>/<name>/`.
    pub artifacts: PathBuf,
    bin: PathBuf,
    pub base_url: String,
    handle: tokio::runtime::Handle,
    /// Every pull-request comment a run posted, in order.
    pub comments: Mutex<Vec<String>>,
    jobs: Mutex<u32>,
    /// With a stand-in `provision` ([`Bench::stubbed`]): where it logs its calls.
    pub stub_log: Option<PathBuf>,
}

/// One script's run.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A job's directories.
pub struct JobDirs {
    pub workspace: PathBuf,
    pub temp: PathBuf,
    pub home: PathBuf,
}

impl Bench {
    /// A checkout with the shipped environments and templates, plus `environments` (name, file
    /// text) written over them; `{sandbox}` in a text becomes the sandbox's address. The policies
    /// of `committed` are rendered into `policies/` as the repository would hold them.
    pub fn new(sandbox: &Sandbox, environments: &[(&str, String)], committed: &[&str]) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("checkout");
        for part in ["environments", "templates"] {
            copy_tree(&manifest_dir().join(part), &checkout.join(part));
        }
        for (name, text) in environments {
            let text = text.replace("{sandbox}", &sandbox.addr().to_string());
            std::fs::write(checkout.join(format!("environments/{name}.yaml")), text).unwrap();
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let provision = assert_cmd::cargo::cargo_bin!("provision");
        write_executable(&bin.join("cargo"), &cargo_shim(provision));
        let artifacts = dir.path().join("artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        for env in committed {
            let out = Command::new(provision)
                .args(["--color", "never", "render", "--env", env, "--offline"])
                .args(["--out", "policies"])
                .current_dir(&checkout)
                .env_remove("PROVISION_AUTH")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        Bench {
            dir,
            checkout,
            artifacts,
            bin,
            base_url: sandbox.base_url().to_owned(),
            handle: tokio::runtime::Handle::current(),
            comments: Mutex::new(Vec::new()),
            jobs: Mutex::new(0),
            stub_log: None,
        }
    }

    /// Like [`Bench::new`], but `cargo install` installs a stand-in `provision` that logs each
    /// call (arguments and the identity it would sign in as) and answers as `stub/exit-<command>-
    /// <env>` says (exit code, then stderr), else 0; `plan --out F` writes a saved-plan stand-in,
    /// and `plan` prints the file `stub/plan-<env>.md` when it exists. OIDC requests get canned
    /// answers instead of the sandbox's. This runs the examples' own shell logic today, before the
    /// commands they call exist on every branch.
    pub fn stubbed(
        sandbox: &Sandbox,
        environments: &[(&str, String)],
        committed: &[&str],
    ) -> Bench {
        let mut bench = Bench::new(sandbox, environments, committed);
        let dir = bench.dir.path().join("stub");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("calls.log");
        std::fs::write(&log, "").unwrap();
        let stub = dir.join("provision");
        write_executable(&stub, &STUB.replace("{dir}", &dir.display().to_string()));
        write_executable(&bench.bin.join("cargo"), &cargo_shim(&stub));
        bench.stub_log = Some(log);
        bench
    }

    /// The stand-in's calls so far, one line each.
    pub fn calls(&self) -> Vec<String> {
        let log = self.stub_log.as_ref().expect("a stubbed bench");
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Sets what the stand-in answers for `command` (`plan`, `up`, …) on `env`.
    pub fn stub_answer(&self, command: &str, env: &str, code: i32, stderr: &str) {
        let dir = self.dir.path().join("stub");
        std::fs::write(
            dir.join(format!("exit-{command}-{env}")),
            if stderr.is_empty() {
                format!("{code}\n")
            } else {
                format!("{code}\n{stderr}\n")
            },
        )
        .unwrap();
    }

    /// Sets the markdown the stand-in's `plan` prints for `env`.
    pub fn stub_plan(&self, env: &str, markdown: &str) {
        let dir = self.dir.path().join("stub");
        std::fs::write(dir.join(format!("plan-{env}.md")), markdown).unwrap();
    }

    /// The CI's OIDC request: the sandbox's issuer, or a canned answer for a stubbed bench.
    pub fn oidc(&self, path: &str, body: &Value) -> Result<Value, String> {
        if self.stub_log.is_none() {
            return self.post(path, body);
        }
        Ok(serde_json::json!({
            "request_url": "https://pipelines.invalid/oidc?api-version=2.0",
            "request_token": "stub-request-token",
            "token": "stub-oidc-token",
        }))
    }

    /// Fresh directories for the next job.
    pub fn job_dirs(&self) -> JobDirs {
        let n = {
            let mut jobs = self.jobs.lock().unwrap();
            *jobs += 1;
            *jobs
        };
        let root = self.dir.path().join(format!("job-{n}"));
        let dirs = JobDirs {
            workspace: root.join("workspace"),
            temp: root.join("temp"),
            home: root.join("home"),
        };
        for d in [&dirs.workspace, &dirs.temp, &dirs.home] {
            std::fs::create_dir_all(d).unwrap();
        }
        dirs
    }

    /// The PATH a job sees: what `cargo install` fills, the shim, then the system's.
    pub fn path(&self, home: &Path) -> String {
        format!(
            "{}:{}:/usr/local/bin:/usr/bin:/bin",
            home.join(".cargo/bin").display(),
            self.bin.display()
        )
    }

    /// Runs `script` with `shell` (the script file is the last argument) in `cwd`, with exactly
    /// `env` (nothing of the test's own environment leaks in).
    pub fn run_script(
        &self,
        shell: &[&str],
        script: &str,
        cwd: &Path,
        scripts: &Path,
        env: &BTreeMap<String, String>,
    ) -> Ran {
        let file = scripts.join(format!("step-{}.sh", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, script).unwrap();
        let out = Command::new("timeout")
            .arg(STEP_SECONDS.to_string())
            .args(shell)
            .arg(&file)
            .current_dir(cwd)
            .env_clear()
            .envs(env)
            .output()
            .expect("bash and timeout are installed");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `POST {sandbox}{path}` with a JSON body: the sandbox's CI endpoints (the OIDC jobs).
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base_url);
        let body = body.clone();
        self.handle.block_on(async move {
            let answer = crate::sandbox_support::client()
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = answer.status();
            let text = answer.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("POST {url}: {status}: {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("POST {url}: {e}: {text}"))
        })
    }
}

/// The stand-in `provision` of [`Bench::stubbed`].
const STUB: &str = r#"#!/bin/bash
set -eu
cmd="$1"
env="" out="" plan=""
prev=""
for arg in "$@"; do
  case "$prev" in
    --env) env="$arg" ;;
    --out) out="$arg" ;;
    --plan) plan="$arg" ;;
  esac
  prev="$arg"
done
if [ -z "$env" ] && [ -n "$plan" ]; then env="$(basename "$plan" .plan.json)"; fi
token=""
if [ -n "${AZURE_FEDERATED_TOKEN_FILE:-}" ]; then token=" token=$(cat "$AZURE_FEDERATED_TOKEN_FILE")"; fi
echo "$* [auth=${PROVISION_AUTH:-} client=${AZURE_CLIENT_ID:-}${token}]" >> '{dir}/calls.log'
code=0
if [ -f "{dir}/exit-$cmd-$env" ]; then
  code="$(head -n1 "{dir}/exit-$cmd-$env")"
  tail -n +2 "{dir}/exit-$cmd-$env" >&2
fi
if [ "$code" = 1 ]; then exit 1; fi
case "$cmd" in
  plan)
    if [ -n "$out" ]; then printf '{"format":"provision-plan/1","env":"%s"}
' "$env" > "$out"; fi
    if [ -f "{dir}/plan-$env.md" ]; then cat "{dir}/plan-$env.md"; else echo "plan of $env"; fi ;;
  render) echo "render of $env: in sync" ;;
  policy) echo "policy test of $env: passed" ;;
  *) echo "$cmd done" ;;
esac
exit "$code"
"#;

/// `cargo install --locked --git URL --tag TAG provision`, as the examples install it, links the
/// test's binary into `~/.cargo/bin`; anything else is refused, so an example cannot depend on a
/// cargo the runner does not have.
fn cargo_shim(provision: &Path) -> String {
    format!(
        r#"#!/bin/bash
set -eu
if [ "$#" -eq 7 ] && [ "$1" = install ] && [ "$2" = --locked ] && [ "$3" = --git ] \
   && [ -n "$4" ] && [ "$5" = --tag ] && [ -n "$6" ] && [ "$7" = provision ]; then
  mkdir -p "$HOME/.cargo/bin"
  ln -sf '{}' "$HOME/.cargo/bin/provision"
  echo "  Installed package \`provision $6 ($4#$6)\` (executable \`provision\`)" >&2
  exit 0
fi
echo "the pipeline runner's cargo knows only: cargo install --locked --git URL --tag TAG provision (got: $*)" >&2
exit 101
"#,
        provision.display()
    )
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The `name=value` and `name<<DELIM … DELIM` lines of a `$GITHUB_OUTPUT`-style file.
pub fn read_outputs(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                match lines.next() {
                    Some(l) if l == delim => break,
                    Some(l) => value.push(l),
                    None => return Err(format!("output {name}: no closing {delim}")),
                }
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_owned(), value.to_owned());
        } else {
            return Err(format!("not an output line: {line}"));
        }
    }
    Ok(out)
}
