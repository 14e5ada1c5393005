//! Declarative workflows: steps as data (the design's `WorkflowStep`),
//! interpreted by one [`Workflow`], [`Declarative`], over the same
//! journaled context as code-defined workflows.
//!
//! The run's state is a JSON object: `{"input": <the run's input>}` plus,
//! for every task that ran, its name and result. Choices test JSON
//! pointers into it (`/reserve/ok`); the run's output is the final state.

use super::context::WorkflowContext;
use super::{RetryPolicy, StepError, StepKey, Workflow, WorkflowError};
use futures::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// JSON carried through the journal as text (the journal's encoding is not
/// self-describing; JSON text is), objects with their keys sorted: a
/// dependency may turn on serde_json's `preserve_order` (Cedar does), and
/// the journal's bytes must not depend on which features a build has.
mod json_text {
    use super::*;

    /// `value` with every object's keys in sorted order.
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }

    pub fn serialize<S: Serializer>(value: &Value, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&sorted(value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// A JSON value that can be journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Json(#[serde(with = "json_text")] pub Value);

/// One step of a declarative workflow. Steps nest (parallel branches,
/// choices) at most [`NESTING_MAX`](crate::tuplespace::NESTING_MAX) levels
/// deep: a deeper input does not decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkflowStep {
    /// Calls the registered task `task` (typically an ask of an actor's
    /// method) with `params`, retried under `attempts`; its result is kept
    /// in the state under `name`. With `compensate`, the registered task
    /// of that name is called with this task's result if the run fails
    /// later.
    ActorTask {
        /// The step's name (unique in the workflow).
        name: String,
        /// The registered task to call.
        task: String,
        /// Its parameters.
        #[serde(with = "json_text")]
        params: Value,
        /// Attempts in all for retryable errors (at least 1).
        attempts: u32,
        /// A registered task undoing this one.
        compensate: Option<String>,
    },
    /// Runs the branches concurrently; each branch's results join the state.
    Parallel {
        /// The step's name.
        name: String,
        /// The branches, each a sequence of steps.
        #[serde(deserialize_with = "crate::nesting::nested")]
        branches: Vec<Vec<WorkflowStep>>,
    },
    /// Runs the steps of the first condition that holds, else `otherwise`.
    Choice {
        /// The step's name.
        name: String,
        /// Tested in order.
        conditions: Vec<ChoiceCondition>,
        /// When none holds.
        #[serde(deserialize_with = "crate::nesting::nested")]
        otherwise: Vec<WorkflowStep>,
    },
    /// Waits `duration` (a durable timer).
    Wait {
        /// The step's name.
        name: String,
        /// How long.
        duration: Duration,
    },
}

/// A branch of a [`WorkflowStep::Choice`]: taken when the state's value at
/// JSON pointer `variable` equals `equals`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChoiceCondition {
    /// A JSON pointer into the state (`/input/express`, `/charge/ok`).
    pub variable: String,
    /// The value it must equal.
    #[serde(with = "json_text")]
    pub equals: Value,
    /// The steps to run.
    #[serde(deserialize_with = "crate::nesting::nested")]
    pub then: Vec<WorkflowStep>,
}

/// A declarative run's input: its steps and its JSON input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeclarativeInput {
    /// The steps, in order.
    pub steps: Vec<WorkflowStep>,
    /// Available to choices as `/input`.
    #[serde(with = "json_text")]
    pub input: Value,
}

/// A task a declarative step can call.
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs the task; `key` is the step's idempotency key.
    fn call(&self, key: StepKey, params: Value) -> BoxFuture<'static, Result<Value, StepError>>;
}

impl<F, Fut> TaskHandler for F
where
    F: Fn(StepKey, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
{
    fn call(&self, key: StepKey, params: Value) -> BoxFuture<'static, Result<Value, StepError>> {
        Box::pin(self(key, params))
    }
}

/// The tasks declarative steps may call, by name.
#[derive(Clone, Default)]
pub struct TaskRegistry {
    tasks: BTreeMap<String, Arc<dyn TaskHandler>>,
}

impl fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.tasks.keys()).finish()
    }
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` as task `name` (replacing one of that name).
    pub fn register(&mut self, name: &str, handler: impl TaskHandler) -> &mut Self {
        self.tasks.insert(name.to_string(), Arc::new(handler));
        self
    }

    fn get(&self, name: &str) -> Result<Arc<dyn TaskHandler>, WorkflowError> {
        self.tasks
            .get(name)
            .cloned()
            .ok_or_else(|| WorkflowError::failed(format!("no task {name:?} is registered")))
    }
}

/// The workflow that runs [`WorkflowStep`]s.
#[derive(Clone, Debug)]
pub struct Declarative {
    tasks: TaskRegistry,
}

impl Declarative {
    /// Runs steps calling the tasks of `tasks`.
    pub fn new(tasks: TaskRegistry) -> Self {
        Declarative { tasks }
    }
}

impl Workflow for Declarative {
    type Input = DeclarativeInput;
    type Output = Json;

    async fn run(
        &self,
        ctx: WorkflowContext,
        input: DeclarativeInput,
    ) -> Result<Json, WorkflowError> {
        let mut state = Map::new();
        state.insert("input".into(), input.input);
        run_steps(&self.tasks, &ctx, &input.steps, &mut state).await?;
        Ok(Json(Value::Object(state)))
    }
}

fn run_steps<'a>(
    tasks: &'a TaskRegistry,
    ctx: &'a WorkflowContext,
    steps: &'a [WorkflowStep],
    state: &'a mut Map<String, Value>,
) -> BoxFuture<'a, Result<(), WorkflowError>> {
    Box::pin(async move {
        for step in steps {
            match step {
                WorkflowStep::ActorTask {
                    name,
                    task,
                    params,
                    attempts,
                    compensate,
                } => {
                    let handler = tasks.get(task)?;
                    let policy = RetryPolicy::attempts(*attempts);
                    let result: Json = ctx
                        .step_with(name, &policy, |key| {
                            let (handler, params) = (handler.clone(), params.clone());
                            async move { handler.call(key, params).await.map(Json) }
                        })
                        .await?;
                    if let Some(undo) = compensate {
                        let undo = tasks.get(undo)?;
                        let done = result.0.clone();
                        ctx.on_failure(name, move |key| {
                            let (undo, done) = (undo.clone(), done.clone());
                            async move { undo.call(key, done).await.map(drop) }
                        });
                    }
                    state.insert(name.clone(), result.0);
                }
                WorkflowStep::Parallel { name, branches } => {
                    let runs = branches.iter().enumerate().map(|(i, branch)| {
                        let ctx = ctx.branch(&format!("{name}.{i}"));
                        let mut local = state.clone();
                        async move {
                            run_steps(tasks, &ctx, branch, &mut local).await?;
                            Ok::<_, WorkflowError>(local)
                        }
                    });
                    for branch_state in futures::future::try_join_all(runs).await? {
                        state.extend(branch_state);
                    }
                }
                WorkflowStep::Choice {
                    name,
                    conditions,
                    otherwise,
                } => {
                    let current = Value::Object(state.clone());
                    let taken = conditions
                        .iter()
                        .find(|c| current.pointer(&c.variable) == Some(&c.equals));
                    let (label, steps) = match taken {
                        Some(c) => (c.variable.as_str(), &c.then),
                        None => ("otherwise", otherwise),
                    };
                    let ctx = ctx.branch(&format!("{name}:{label}"));
                    run_steps(tasks, &ctx, steps, state).await?;
                }
                WorkflowStep::Wait { name, duration } => ctx.sleep(name, *duration).await?,
            }
        }
        Ok(())
    })
}
