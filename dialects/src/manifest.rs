//! A compiled plan: the placed `exec` module and its manifest, in memory ([`Plan`]) or as a
//! plan directory (`DIR/plan.mlir` + `DIR/manifest.json`, written by `agentc build -o DIR`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decl::Declarations;

/// Format version of the manifest; bumped on incompatible changes (2: the declarations are the
/// plan's own types, the SLA one object).
pub const MANIFEST_FORMAT: u32 = 2;
/// The plan module's file in a plan directory.
pub const PLAN_FILE: &str = "plan.mlir";
/// The manifest's file in a plan directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What the runtime must have to run the plan (models, indexes, tools), the SLA, and what the
/// compiler predicted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub workflow: String,
    /// The workflow file; workflow-relative paths resolve against its directory.
    pub source: PathBuf,
    pub cluster: String,
    pub batch: usize,
    /// The SLA, models, tools and indexes.
    pub declarations: Declarations,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The placement report.
    pub predicted: serde_json::Value,
    /// What each pass did and how long it took.
    pub passes: serde_json::Value,
}

impl Manifest {
    /// The directory the workflow's relative paths resolve against.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// A compiled, placed plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The printed `exec` module.
    pub mlir: String,
    pub manifest: Manifest,
}

/// A plan directory that cannot be read or written: the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("plan {}: {message}", path.display())]
pub struct PlanFileError {
    pub path: PathBuf,
    pub message: String,
}

impl Plan {
    /// Reads `DIR/plan.mlir` and `DIR/manifest.json`.
    pub fn read_dir(dir: &Path) -> Result<Self, PlanFileError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| PlanFileError {
                path,
                message: format!("cannot read it: {e}"),
            })
        };
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest: serde_json::Value =
            serde_json::from_str(&read(MANIFEST_FILE)?).map_err(|e| PlanFileError {
                path: manifest_path.clone(),
                message: format!("not valid JSON: {e}"),
            })?;
        let format = manifest.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(MANIFEST_FORMAT)) {
            return Err(PlanFileError {
                path: manifest_path,
                message: format!(
                    "manifest format {} is not the format this agentc reads ({MANIFEST_FORMAT}); rebuild the plan with `agentc build`",
                    format.map_or("(missing)".to_owned(), |f| f.to_string())
                ),
            });
        }
        let manifest = serde_path_to_error::deserialize(manifest).map_err(|e| PlanFileError {
            path: manifest_path,
            message: format!("at `{}`: {}", e.path(), e.inner()),
        })?;
        Ok(Self {
            mlir: read(PLAN_FILE)?,
            manifest,
        })
    }

    /// Writes `DIR/plan.mlir` and `DIR/manifest.json`, creating `DIR`.
    pub fn write_dir(&self, dir: &Path) -> Result<(), PlanFileError> {
        let fail = |path: PathBuf, e: std::io::Error| PlanFileError {
            path,
            message: format!("cannot write it: {e}"),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir.to_path_buf(), e))?;
        let manifest = serde_json::to_string_pretty(&self.manifest).map_err(|e| PlanFileError {
            path: dir.join(MANIFEST_FILE),
            message: e.to_string(),
        })? + "\n";
        for (name, text) in [(PLAN_FILE, &self.mlir), (MANIFEST_FILE, &manifest)] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| fail(path.clone(), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decl::{ModelKind, ModelSpec, Sla, ToolSpec};

    fn plan() -> Plan {
        Plan {
            mlir: "module {\n}\n".into(),
            manifest: Manifest {
                format: MANIFEST_FORMAT,
                workflow: "wf".into(),
                source: "/w/flows/wf.yaml".into(),
                cluster: "local".into(),
                batch: 1,
                declarations: Declarations {
                    sla: Sla {
                        p95_ms: 2000.0,
                        usd_per_1k: None,
                    },
                    models: vec![ModelSpec {
                        name: "chat".into(),
                        kind: ModelKind::Llm,
                        path: "../models/m.gguf".into(),
                    }],
                    tools: vec![ToolSpec::http("search", "http://127.0.0.1:9/q")],
                    indexes: vec![],
                    description: None,
                },
                inputs: vec!["q".into()],
                outputs: vec!["answer".into()],
                predicted: serde_json::json!({"feasible": true}),
                passes: serde_json::json!([]),
            },
        }
    }

    #[test]
    fn a_plan_directory_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan();
        plan.write_dir(dir.path()).unwrap();
        assert_eq!(Plan::read_dir(dir.path()).unwrap(), plan);
        assert_eq!(plan.manifest.base_dir(), Path::new("/w/flows"));
    }

    #[test]
    fn a_damaged_manifest_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        plan().write_dir(dir.path()).unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"kind\": \"llm\"", "\"kind\": \"lm\"")).unwrap();
        let err = Plan::read_dir(dir.path()).unwrap_err();
        assert_eq!(err.path, path);
        assert!(
            err.message
                .starts_with("at `declarations.models[0].kind`: unknown variant `lm`"),
            "{}",
            err.message
        );
        std::fs::write(&path, text.replace("\"format\": 2", "\"format\": 1")).unwrap();
        assert_eq!(
            Plan::read_dir(dir.path()).unwrap_err().message,
            "manifest format 1 is not the format this agentc reads (2); rebuild the plan with `agentc build`"
        );
    }
}
