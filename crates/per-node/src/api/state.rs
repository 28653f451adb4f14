//! What every handler gets: the shared node context and the sequencer's handle.

use crate::node::shared::Shared;
use crate::sequencer::SequencerHandle;
use std::sync::Arc;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// Shared node context.
    pub shared: Arc<Shared>,
    /// The write path.
    pub sequencer: SequencerHandle,
}
