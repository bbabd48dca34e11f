//! The local behaviour of each action the examples use: checkout copies the repository, cache
//! always misses, artifacts go through the bench's store by run id and name, and github-script
//! is known by its step id (the plan comment is recorded; the merged pull request's run is the
//! one the test names). Any other action, input or script is an error of the run.

use std::collections::BTreeMap;

use super::bench::{JobDirs, Ran, copy_tree};
use super::github::{Event, Github};

impl Github<'_> {
    /// The local behaviour of each action the examples use.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn action(
        &self,
        action: &str,
        with: &BTreeMap<String, String>,
        step_id: Option<&str>,
        env: &BTreeMap<String, String>,
        dirs: &JobDirs,
        event: &Event,
        run_id: u64,
        token: &BTreeMap<String, String>,
    ) -> Result<Ran, String> {
        let name = action.split('@').next().unwrap_or_default();
        // What the job's GITHUB_TOKEN may do; GitHub answers a call beyond it with 403 "Resource
        // not accessible by integration".
        let may = |scope: &str, write: bool| match token.get(scope).map(String::as_str) {
            Some("write") => true,
            Some("read") => !write,
            _ => false,
        };
        let needs: &[(&str, bool)] = match (name, step_id) {
            ("actions/github-script", Some("comment")) => &[("pull-requests", true)],
            ("actions/github-script", Some("plan-run")) => {
                &[("pull-requests", false), ("actions", false)]
            }
            ("actions/download-artifact", _) if with.contains_key("run-id") => {
                &[("actions", false)]
            }
            ("actions/checkout", _) => &[("contents", false)],
            _ => &[],
        };
        if let Some((scope, write)) = needs.iter().find(|(s, w)| !may(s, *w)) {
            let level = if *write { "write" } else { "read" };
            return Ok(Ran {
                code: 1,
                stdout: String::new(),
                stderr: format!(
                    "Resource not accessible by integration (the job's permissions lack \
                     `{scope}: {level}`)"
                ),
            });
        }
        let allowed: &[&str] = match name {
            "actions/checkout" => &["persist-credentials"],
            "actions/cache" => &["path", "key", "restore-keys"],
            "actions/upload-artifact" => &["name", "path", "if-no-files-found", "retention-days"],
            "actions/download-artifact" => &["name", "path", "run-id", "github-token"],
            "actions/github-script" => &["script"],
            _ => return Err(format!("the runner has no local behaviour for `{action}`")),
        };
        if let Some(key) = with.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "{name}: input `{key}` is not supported by the runner"
            ));
        }
        let ws = &dirs.workspace;
        let get = |key: &str| with.get(key).cloned().unwrap_or_default();
        let ok = |stdout: String| Ran {
            code: 0,
            stdout,
            stderr: String::new(),
        };
        let fail = |stderr: String| Ran {
            code: 1,
            stdout: String::new(),
            stderr,
        };
        Ok(match name {
            "actions/checkout" => {
                copy_tree(&self.bench.checkout, ws);
                ok("checked out".into())
            }
            "actions/cache" => {
                append(&env["GITHUB_OUTPUT"], "cache-hit=false\n");
                ok(format!("Cache not found for input keys: {}", get("key")))
            }
            "actions/upload-artifact" => {
                let from = ws.join(get("path"));
                let to = self
                    .bench
                    .artifacts
                    .join(format!("{run_id}/{}", get("name")));
                let empty = std::fs::read_dir(&from)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(true);
                if to.exists() {
                    fail(format!(
                        "an artifact named {} already exists in this run",
                        get("name")
                    ))
                } else if empty && get("if-no-files-found") == "error" {
                    fail(format!(
                        "No files were found with the provided path: {}",
                        get("path")
                    ))
                } else {
                    if !empty {
                        copy_tree(&from, &to);
                    }
                    ok(format!("uploaded {}", get("name")))
                }
            }
            "actions/download-artifact" => {
                let source_run = match with.get("run-id") {
                    Some(id) if get("github-token").is_empty() => {
                        return Err(format!("run-id {id} without github-token"));
                    }
                    Some(id) => id.clone(),
                    None => run_id.to_string(),
                };
                let from = self
                    .bench
                    .artifacts
                    .join(format!("{source_run}/{}", get("name")));
                if from.is_dir() {
                    copy_tree(&from, &ws.join(get("path")));
                    ok(format!("downloaded {} of run {source_run}", get("name")))
                } else {
                    fail(format!(
                        "Artifact not found for name: {} (run {source_run})",
                        get("name")
                    ))
                }
            }
            _ => match step_id {
                Some("comment") => {
                    if event.pull_request.is_none() {
                        return Err("the comment script needs a pull_request event".into());
                    }
                    let file = env
                        .get("COMMENT_FILE")
                        .ok_or("the comment step sets no COMMENT_FILE")?;
                    match std::fs::read_to_string(ws.join(file)) {
                        Ok(body) => {
                            self.bench.comments.lock().unwrap().push(body);
                            ok("comment posted".into())
                        }
                        Err(e) => fail(format!("{file}: {e}")),
                    }
                }
                Some("plan-run") => match self.merged {
                    Some((run, pr)) => {
                        append(
                            &env["GITHUB_OUTPUT"],
                            &format!("run-id={run}\npull-request={pr}\n"),
                        );
                        ok(format!("plan of pull request #{pr}: run {run}"))
                    }
                    None => fail(format!("{} did not come through a pull request", event.sha)),
                },
                other => {
                    return Err(format!(
                        "github-script step id {other:?} has no local behaviour"
                    ));
                }
            },
        })
    }
}

fn append(path: &str, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
