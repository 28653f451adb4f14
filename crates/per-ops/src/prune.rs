//! `per prune-backups`: remote retention on every configured target (Postgres, S3/R2), never
//! breaking a chain: keep every restore point newer than N days and at least the newest M, with
//! everything each kept one needs (chain links, sidecars, WAL after it); delete only the rest.
//! The plan is `per_store::backup::retention`; this file opens the targets, plans from one
//! listing, applies (or, with `--dry-run`, only reports) and says per target what it did. A
//! target that cannot be listed deletes nothing and makes the run end with exit 3.

use crate::error::ProcedureError;
use crate::report::Report;
use per_node::backup::BackupSettings;
use per_store::backup::retention::{
    Action, RemotePlan, RemoteRetentionPolicy, apply_remote_retention, plan_remote_retention,
};
use serde_json::{Value, json};
use std::time::SystemTime;

/// What to prune, and how.
pub struct PrunePlan {
    /// The remote targets' settings (`PER_DATABASE_URL`, `PER_BACKUP_S3_URL`).
    pub backups: BackupSettings,
    /// Only this target (`postgres` or `s3`); `None`: every configured one.
    pub target: Option<&'static str>,
    /// Keep N days and at least M restore points.
    pub policy: RemoteRetentionPolicy,
    /// Plan and report only; delete nothing.
    pub dry_run: bool,
}

/// Prunes (or plans to prune) every selected target; one entry per target in the report.
pub fn prune_backups(plan: &PrunePlan) -> Result<Report, ProcedureError> {
    let configured = plan.backups.configured();
    let names: Vec<&'static str> = match plan.target {
        Some(name) if configured.contains(&name) => vec![name],
        Some(name) => {
            return Err(ProcedureError::Usage(format!(
                "the {name} target is not configured (PER_DATABASE_URL / PER_BACKUP_S3_URL)"
            )));
        }
        None => configured,
    };
    if names.is_empty() {
        return Err(ProcedureError::Usage(
            "no remote backup target is configured (PER_DATABASE_URL / PER_BACKUP_S3_URL): nothing to prune"
                .to_owned(),
        ));
    }
    let mut targets = serde_json::Map::new();
    let mut human = String::new();
    let mut unreachable = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        let (entry, line, outcome) = prune_one(plan, name);
        human.push_str(&line);
        human.push('\n');
        match outcome {
            Outcome::Done => {}
            Outcome::Unreachable => unreachable.push(name),
            Outcome::Failed => failed.push(name),
        }
        targets.insert(name.to_owned(), entry);
    }
    let ok = unreachable.is_empty() && failed.is_empty();
    let json = json!({
        "ok": ok,
        "dry_run": plan.dry_run,
        "keep_days": plan.policy.keep_for.as_secs() / 86_400,
        "keep_restore_points": plan.policy.restore_points_min,
        "targets": targets,
    });
    let (exit, error) = if !unreachable.is_empty() {
        (
            3,
            Some(format!(
                "unreachable: {} (nothing deleted there)",
                unreachable.join(", ")
            )),
        )
    } else if !failed.is_empty() {
        (
            1,
            Some(format!("pruning stopped on: {}", failed.join(", "))),
        )
    } else {
        (0, None)
    };
    Ok(Report {
        json,
        human: human.trim_end().to_owned(),
        exit,
        error,
    })
}

enum Outcome {
    Done,
    Unreachable,
    Failed,
}

fn prune_one(plan: &PrunePlan, name: &'static str) -> (Value, String, Outcome) {
    let mut target = match plan.backups.open(name) {
        Ok(target) => target,
        Err(error) => {
            return (
                json!({"ok": false, "error": format!("{error:#}")}),
                format!("{name}: cannot open: {error:#}"),
                Outcome::Unreachable,
            );
        }
    };
    let listing = match target.list() {
        Ok(listing) => listing,
        Err(error) => {
            return (
                json!({"ok": false, "error": format!("cannot list; nothing deleted: {error}")}),
                format!("{name}: cannot list; nothing deleted: {error}"),
                Outcome::Unreachable,
            );
        }
    };
    let planned = plan_remote_retention(&listing, &plan.policy, SystemTime::now());
    let mut entry = plan_json(&planned);
    if plan.dry_run {
        let line = format!(
            "{name}: would delete {} of {} objects ({} bytes); {} restore points kept of {}",
            planned.deletions().len(),
            planned.objects.len(),
            planned.bytes_deleted(),
            planned.restore_points.iter().filter(|rp| rp.kept).count(),
            planned.restore_points.len()
        );
        return (entry, line, Outcome::Done);
    }
    match apply_remote_retention(target.as_mut(), &planned) {
        Ok(applied) => {
            entry["deleted"] = json!(applied.deleted);
            entry["already_gone"] = json!(applied.already_gone);
            entry["bytes_deleted"] = json!(applied.bytes_deleted);
            let line = format!(
                "{name}: deleted {} objects ({} bytes); {} restore points kept",
                applied.deleted.len(),
                applied.bytes_deleted,
                planned.restore_points.iter().filter(|rp| rp.kept).count()
            );
            (entry, line, Outcome::Done)
        }
        Err(error) => {
            let unreachable = matches!(
                error,
                per_store::backup::retention::RemoteRetentionError::List { .. }
            );
            entry["ok"] = json!(false);
            entry["error"] = json!(error.to_string());
            let line = format!("{name}: {error}");
            let outcome = if unreachable {
                Outcome::Unreachable
            } else {
                Outcome::Failed
            };
            (entry, line, outcome)
        }
    }
}

/// The plan as the `--json` document shows it: every deletion with its reason, the restore
/// points (kept or not, complete or why not), and totals.
fn plan_json(plan: &RemotePlan) -> Value {
    let deletions: Vec<Value> = plan
        .deletions()
        .into_iter()
        .map(|o| json!({"name": o.name, "bytes": o.bytes, "reason": o.reason.to_string()}))
        .collect();
    let restore_points: Vec<Value> = plan
        .restore_points
        .iter()
        .map(|rp| {
            json!({
                "seq": rp.seq,
                "name": rp.name,
                "kept": rp.kept,
                "complete": rp.broken.is_none(),
                "broken": rp.broken,
            })
        })
        .collect();
    json!({
        "ok": true,
        "objects": plan.objects.len(),
        "keep": plan.objects.iter().filter(|o| o.action == Action::Keep).count(),
        "delete": deletions.len(),
        "bytes_to_delete": plan.bytes_deleted(),
        "deletions": deletions,
        "restore_points": restore_points,
    })
}
