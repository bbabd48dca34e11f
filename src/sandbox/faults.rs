//! Injected failures: the named profiles' dice and scripted faults from a YAML file, all drawn
//! from one seeded generator so a failing run reproduces from its seed.
//!
//! ```yaml
//! seed: 7                        # optional; overrides --seed
//! faults:
//!   - method: PATCH              # optional; any method when absent
//!     path: /v1.0/applications*  # `*` matches any run of characters
//!     calls: [1, 3]              # which matching calls (1-based) fail; absent: every call
//!     status: 429                # the response to give...
//!     headers: { Retry-After: "2" }
//!     body: { error: { code: TooManyRequests, message: "Throttled" } }
//!   - path: /*/oauth2/v2.0/token
//!     calls: [2]
//!     reset: true                # ...or drop the connection
//!   - path: /v1.0/servicePrincipals*
//!     delay_ms: 1500             # ...or answer late (sandbox ms), then normally
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::dice::Dice;

/// Named fault profiles (a scripted file can be added on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultProfile {
    /// Every request is answered properly.
    #[default]
    None,
    /// 10% of requests get 429 or 503 with `Retry-After`; Graph replication lag of 2 s.
    Flaky,
    /// Like `flaky`, plus connection resets and slow responses.
    Hostile,
}

impl FaultProfile {
    pub fn parse(name: &str) -> Option<FaultProfile> {
        match name {
            "none" => Some(FaultProfile::None),
            "flaky" => Some(FaultProfile::Flaky),
            "hostile" => Some(FaultProfile::Hostile),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultScript {
    pub seed: Option<u64>,
    pub faults: Vec<ScriptedFault>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedFault {
    pub method: Option<String>,
    pub path: String,
    pub calls: Option<Vec<u64>>,
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    #[serde(default)]
    pub reset: bool,
    pub delay_ms: Option<u64>,
}

impl FaultScript {
    /// Parses a script; errors carry line and column.
    pub fn parse(file: &str, text: &str) -> Result<FaultScript, String> {
        let script: FaultScript = crate::config::parse_yaml_document(file, text)?;
        for (i, f) in script.faults.iter().enumerate() {
            let actions = usize::from(f.status.is_some())
                + usize::from(f.reset)
                + usize::from(f.delay_ms.is_some());
            if actions != 1 {
                return Err(format!(
                    "{file}: faults[{i}]: give exactly one of `status`, `reset: true`, `delay_ms`"
                ));
            }
        }
        Ok(script)
    }
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Option<Value>,
        label: String,
    },
    Reset {
        label: String,
    },
    Delay {
        ms: u64,
        label: String,
    },
}

impl Fault {
    pub fn label(&self) -> &str {
        match self {
            Fault::Respond { label, .. } | Fault::Reset { label } | Fault::Delay { label, .. } => {
                label
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct FaultEngine {
    profile: FaultProfile,
    script: Vec<ScriptedFault>,
    matches: Vec<u64>,
    dice: Dice,
    pub seed: u64,
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl FaultEngine {
    pub fn new(profile: FaultProfile, script: Option<FaultScript>, seed: u64) -> FaultEngine {
        let seed = script.as_ref().and_then(|s| s.seed).unwrap_or(seed);
        let script = script.map(|s| s.faults).unwrap_or_default();
        FaultEngine {
            profile,
            matches: vec![0; script.len()],
            script,
            dice: Dice::new(seed),
            seed,
        }
    }

    /// Decides the fate of one request. Test-facing endpoints are never faulted.
    pub fn decide(&mut self, method: &str, path: &str) -> Option<Fault> {
        if path.starts_with("/_sandbox/") || path.starts_with("/devicelogin") {
            return None;
        }
        for (i, f) in self.script.iter().enumerate() {
            if f.method
                .as_ref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || !glob(&f.path, path)
            {
                continue;
            }
            self.matches[i] += 1;
            let call = self.matches[i];
            if f.calls.as_ref().is_some_and(|calls| !calls.contains(&call)) {
                continue;
            }
            let label = format!("script[{i}] call {call}");
            return Some(if f.reset {
                Fault::Reset { label }
            } else if let Some(ms) = f.delay_ms {
                Fault::Delay { ms, label }
            } else {
                Fault::Respond {
                    status: f.status.unwrap_or(500),
                    headers: f
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    body: f.body.clone(),
                    label,
                }
            });
        }
        let (fault_percent, hostile) = match self.profile {
            FaultProfile::None => return None,
            FaultProfile::Flaky => (10, false),
            FaultProfile::Hostile => (20, true),
        };
        if !self.dice.chance(fault_percent) {
            return None;
        }
        let roll = self.dice.roll() % if hostile { 4 } else { 2 };
        Some(match roll {
            0 => throttled(path),
            1 => unavailable(),
            2 => Fault::Reset {
                label: "hostile: connection reset".to_owned(),
            },
            _ => Fault::Delay {
                ms: 3_000,
                label: "hostile: slow response".to_owned(),
            },
        })
    }
}

impl FaultEngine {
    /// Whether an async operation starting now is to end `Failed`: one in eight under `hostile`.
    pub fn fail_operation(&mut self) -> bool {
        self.profile == FaultProfile::Hostile && self.dice.chance(12)
    }
}

fn throttled(path: &str) -> Fault {
    let body = if path.starts_with("/v1.0/") {
        serde_json::json!({ "error": { "code": "TooManyRequests", "message": "Too many requests. Please retry after the time specified in the Retry-After header." } })
    } else {
        serde_json::json!({ "error": { "code": "TooManyRequests", "message": "The request is being throttled." } })
    };
    Fault::Respond {
        status: 429,
        headers: vec![("Retry-After".to_owned(), "1".to_owned())],
        body: Some(body),
        label: "profile: throttled".to_owned(),
    }
}

fn unavailable() -> Fault {
    Fault::Respond {
        status: 503,
        headers: vec![("Retry-After".to_owned(), "1".to_owned())],
        body: Some(
            serde_json::json!({ "error": { "code": "ServiceUnavailable", "message": "The service is temporarily unavailable." } }),
        ),
        label: "profile: unavailable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "/v1.0/applications*",
            "/v1.0/applications(uniqueName='x')"
        ));
        assert!(glob("/*/oauth2/v2.0/token", "/5a4d/oauth2/v2.0/token"));
        assert!(!glob(
            "/*/oauth2/v2.0/token",
            "/5a4d/oauth2/v2.0/devicecode"
        ));
        assert!(glob("/exact", "/exact"));
    }

    #[test]
    fn scripted_faults_hit_the_calls_they_name() {
        let script = FaultScript::parse("f.yaml", "faults:\n  - method: GET\n    path: /v1.0/*\n    calls: [2]\n    status: 429\n    headers: {Retry-After: \"3\"}\n").unwrap();
        let mut e = FaultEngine::new(FaultProfile::None, Some(script), 1);
        assert_eq!(e.decide("GET", "/v1.0/applications"), None);
        assert!(matches!(
            e.decide("GET", "/v1.0/applications"),
            Some(Fault::Respond { status: 429, .. })
        ));
        assert_eq!(e.decide("GET", "/v1.0/applications"), None);
        assert_eq!(e.decide("POST", "/v1.0/applications"), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let run = |seed| {
            let mut e = FaultEngine::new(FaultProfile::Flaky, None, seed);
            (0..200)
                .map(|_| {
                    e.decide("GET", "/v1.0/applications")
                        .map(|f| f.label().to_owned())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let faults = run(7).iter().filter(|f| f.is_some()).count();
        assert!((8..=35).contains(&faults), "about 10% of 200, got {faults}");
    }

    #[test]
    fn scripts_need_one_action() {
        let err = FaultScript::parse("f.yaml", "faults:\n  - path: /x\n").unwrap_err();
        assert_eq!(
            err,
            "f.yaml: faults[0]: give exactly one of `status`, `reset: true`, `delay_ms`"
        );
        let err =
            FaultScript::parse("f.yaml", "faults:\n  - path: /x\n    stauts: 500\n").unwrap_err();
        assert!(err.starts_with("f.yaml:3:"), "{err}");
    }
}
