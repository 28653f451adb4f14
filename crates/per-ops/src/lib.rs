//! The runbook's procedures as library functions, below the CLI: today the alert rules' delivery
//! ([`alert`]: PagerDuty, Slack, SMS, e-mail, with de-duplication).

pub mod alert;
pub mod monitor;
pub mod rto;
