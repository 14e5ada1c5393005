//! Child workflows: a run of any kind started from a step of its parent,
//! awaited, signalled or cancelled through journaled steps, and cancelled
//! with its parent unless it was started to outlive it.
//!
//! The child's id derives from the parent's (`<parent id>.<name>`, with
//! the parent's history number once it continued as new), and starting
//! an existing run returns it: a parent that replays, or a step cut short
//! and run again, never starts a second child.

use super::context::{WorkflowContext, decode, encode};
use super::{RunId, RunStatus, Workflow, WorkflowError, Workflows};
use futures::FutureExt;
use plexspaces_storage::sync::LockExt;

/// What happens to a child still running when its parent's history ends
/// (completed, failed, cancelled or continued as new).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentClose {
    /// The child is cancelled (its compensations run).
    #[default]
    Cancel,
    /// The child runs on, on its own.
    Abandon,
}

/// A child run started by [`WorkflowContext::start_child`].
pub struct ChildRun<C: Workflow> {
    id: RunId,
    name: String,
    kind: Workflows<C>,
    parent: WorkflowContext,
}

impl<C: Workflow> std::fmt::Debug for ChildRun<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildRun").field("id", &self.id).finish()
    }
}

impl WorkflowContext {
    /// Starts a child run of `kind` named `name` (unique within this run's
    /// history, like a branch name) with `input`, once: a journaled step.
    /// `on_parent_close` says whether it is cancelled when this history
    /// ends first.
    pub async fn start_child<C: Workflow>(
        &self,
        kind: &Workflows<C>,
        name: &str,
        input: &C::Input,
        on_parent_close: ParentClose,
    ) -> Result<ChildRun<C>, WorkflowError> {
        if !self.shared.child_names.locked().insert(name.to_string()) {
            return Err(WorkflowError::InvalidId(format!(
                "child name {name:?} used twice in one history"
            )));
        }
        let id = self.child_id(name)?;
        let input = encode(input, "child's input")?;
        let started: String = self
            .reach(&format!("child:{name}"), |_| async {
                kind.start_encoded(&id, input).await.map(|_| id.to_string())
            })
            .await?;
        debug_assert_eq!(started, id.to_string(), "the journaled child id is derived");
        if on_parent_close == ParentClose::Cancel {
            let (kind, id) = (kind.clone(), id.clone());
            self.shared.children.locked().push(Box::new(move || {
                let (kind, id) = (kind.clone(), id.clone());
                async move { kind.cancel(&id).await }.boxed()
            }));
        }
        Ok(ChildRun {
            id,
            name: name.to_string(),
            kind: kind.clone(),
            parent: self.clone(),
        })
    }

    /// Starts a child (cancelled with this run) and awaits its output.
    pub async fn child<C: Workflow>(
        &self,
        kind: &Workflows<C>,
        name: &str,
        input: &C::Input,
    ) -> Result<C::Output, WorkflowError> {
        self.start_child(kind, name, input, ParentClose::Cancel)
            .await?
            .result()
            .await
    }

    /// `<parent id>.<name>` (`.g<n>` added in history `n` > 0), in the
    /// parent's tenant.
    fn child_id(&self, name: &str) -> Result<RunId, WorkflowError> {
        let (tenant, parent) = self
            .run_id()
            .split_once('/')
            .ok_or_else(|| WorkflowError::InvalidId(self.run_id().to_string()))?;
        let id = match self.generation() {
            0 => format!("{parent}.{name}"),
            g => format!("{parent}.g{g}.{name}"),
        };
        RunId::new(tenant, &id)
    }

    /// Cancels the children started with [`ParentClose::Cancel`] (a no-op
    /// for those that ended). Idempotent: a driver that dies halfway is
    /// followed by one that cancels them all again.
    pub(crate) async fn close_children(&self) -> Result<(), WorkflowError> {
        let cancels: Vec<_> = {
            let children = self.shared.children.locked();
            children.iter().map(|cancel| cancel()).collect()
        };
        for cancel in cancels {
            cancel.await?;
        }
        Ok(())
    }
}

impl<C: Workflow> ChildRun<C> {
    /// The child's run id.
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// Waits for the child to end (a journaled step, woken by the child's
    /// end): its output, or [`WorkflowError::ChildEnded`] if it failed or
    /// was cancelled. Cancelling the parent meanwhile stops the wait.
    pub async fn result(&self) -> Result<C::Output, WorkflowError> {
        let shared = self.parent.shared.clone();
        let (kind, id) = (self.kind.clone(), self.id.clone());
        let outcome = self
            .parent
            .journaled(&format!("child-result:{}", self.name), |_, _| async move {
                loop {
                    shared.check_live()?;
                    match kind.outcome(&id, shared.cancel_check_every).await {
                        Ok(ended) => {
                            return Ok(encode(&ended, "child's outcome").map_err(|e| e.to_string()));
                        }
                        Err(WorkflowError::Timeout | WorkflowError::Unavailable(_)) => {
                            shared.refresh_cancel().await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
            .await?;
        let ended: Result<Vec<u8>, RunStatus> =
            WorkflowContext::value(&format!("child-result:{}", self.name), outcome)?;
        match ended {
            Ok(output) => decode(&output, "the child's output"),
            Err(status) => Err(WorkflowError::ChildEnded {
                child: self.id.to_string(),
                status,
            }),
        }
    }

    /// Sends the child signal `name` with `data`, once (a journaled step).
    pub async fn signal<T: serde::Serialize>(
        &self,
        name: &str,
        data: &T,
    ) -> Result<(), WorkflowError> {
        self.parent
            .signal_run(&self.kind, &self.id, name, data)
            .await
    }

    /// Cancels the child, once (a journaled step).
    pub async fn cancel(&self) -> Result<(), WorkflowError> {
        self.parent
            .reach(&format!("child-cancel:{}", self.name), |_| {
                self.kind.cancel(&self.id)
            })
            .await
    }
}
