//! The supervisor actor.

use super::spec::{ChildSpec, Restart, Strategy, SupervisorSpec};
use crate::actor::{
    Actor, ActorError, ActorId, ActorRef, AskError, ChildCell, Context, ExitReason, SpawnError,
};
use crate::env::Env;
use crate::seams::{Clock, Instant, JoinHandle};
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// How long a supervisor waits for a child it stops before moving on.
pub const CHILD_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

struct Child {
    spec: ChildSpec,
    running: Option<ChildCell>,
    /// Bumped at every start, so the exit of an earlier incarnation (one the
    /// supervisor stopped itself) is recognised and ignored.
    generation: u64,
    restarts: u64,
    watcher: Option<JoinHandle<()>>,
}

impl Child {
    fn new(spec: ChildSpec) -> Self {
        Child {
            spec,
            running: None,
            generation: 0,
            restarts: 0,
            watcher: None,
        }
    }
}

/// A supervisor: an actor that starts, watches and restarts children.
pub struct Supervisor {
    spec: SupervisorSpec,
    children: Vec<Child>,
    /// When recent restarts happened (within the intensity window).
    recent: VecDeque<Instant>,
    total_restarts: u64,
}

/// A child's exit, as reported to its supervisor by the watcher the
/// supervisor started. Only the supervisor makes these.
#[derive(Debug)]
pub struct ChildExit {
    name: String,
    generation: u64,
    reason: ExitReason,
}

/// What a supervisor receives.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Start and supervise another child.
    AddChild(ChildSpec),
    /// Stop a child and forget its spec.
    RemoveChild(String),
    /// Stop a child and start it again (not counted against intensity).
    RestartChild(String),
    /// Report on the children.
    Stats,
    /// The child of this name, as running now (see
    /// [`ActorRef::<Supervisor>::child`]).
    Child(String),
    /// A child exited.
    ChildExited(ChildExit),
}

/// A child as reported by [`SupervisorStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildStats {
    /// Its name.
    pub name: String,
    /// Its id while running.
    pub id: Option<ActorId>,
    /// Times it was restarted after exiting.
    pub restarts: u64,
}

/// A supervisor's view of its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorStats {
    /// The children, in start order.
    pub children: Vec<ChildStats>,
    /// Restarts since the supervisor started.
    pub total_restarts: u64,
}

/// What a supervisor answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupervisorReply {
    /// The child now running.
    Started(ActorId),
    /// Done.
    Done,
    /// The report.
    Stats(SupervisorStats),
    /// The child asked for.
    Child(RunningChild),
}

/// A running child, as a supervisor hands it out: turned into a typed ref
/// by [`ActorRef::<Supervisor>::child`].
#[derive(Clone)]
pub struct RunningChild(ChildCell);

impl RunningChild {
    /// The child's id.
    pub fn id(&self) -> &ActorId {
        self.0.id()
    }
}

impl fmt::Debug for RunningChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunningChild({})", self.id())
    }
}

impl PartialEq for RunningChild {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for RunningChild {}

/// A supervisor operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No child of that name.
    NoSuchChild(String),
    /// A child of that name exists already.
    DuplicateChild(String),
    /// The child could not be started.
    StartFailed(SpawnError),
    /// The supervisor did not answer.
    Ask(AskError),
    /// The child exists but is not running: a transient child that ended
    /// normally, or one the supervisor gave up restarting.
    NotRunning(String),
    /// The child is not the actor type asked for.
    WrongType {
        /// The child's name.
        name: String,
        /// The type asked for.
        expected: &'static str,
    },
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorError::NoSuchChild(name) => write!(f, "no child named {name:?}"),
            SupervisorError::DuplicateChild(name) => write!(f, "a child named {name:?} exists"),
            SupervisorError::StartFailed(e) => write!(f, "child failed to start: {e}"),
            SupervisorError::Ask(e) => write!(f, "supervisor unreachable: {e}"),
            SupervisorError::NotRunning(name) => write!(f, "child {name:?} is not running"),
            SupervisorError::WrongType { name, expected } => {
                write!(f, "child {name:?} is not a {expected}")
            }
        }
    }
}

impl std::error::Error for SupervisorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SupervisorError::StartFailed(e) => Some(e),
            SupervisorError::Ask(e) => Some(e),
            _ => None,
        }
    }
}

impl Supervisor {
    /// A supervisor that will run `spec` once spawned.
    pub fn new(spec: SupervisorSpec) -> Self {
        Supervisor {
            children: Vec::new(),
            recent: VecDeque::new(),
            total_restarts: 0,
            spec,
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.name == name)
    }

    fn start_child(
        &mut self,
        ctx: &mut Context<Self>,
        index: usize,
    ) -> Result<ActorId, SpawnError> {
        let child = &mut self.children[index];
        let cell = child.spec.start(ctx.system())?;
        child.generation += 1;
        let (me, name, generation, exit) = (
            ctx.myself().clone(),
            child.spec.name.clone(),
            child.generation,
            cell.exit_watch(),
        );
        child.watcher = Some(ctx.env().spawn(async move {
            let reason = crate::actor::wait_exit(exit).await;
            let _ = me
                .tell(SupervisorMsg::ChildExited(ChildExit {
                    name,
                    generation,
                    reason,
                }))
                .await;
        }));
        let id = cell.id().clone();
        child.running = Some(cell);
        Ok(id)
    }

    /// Stops child `index` (if running) and waits for it to exit.
    async fn stop_child(&mut self, env: &Env, index: usize) {
        let child = &mut self.children[index];
        if let Some(watcher) = child.watcher.take() {
            watcher.abort(); // its exit is ours: not a failure to handle
        }
        if let Some(cell) = child.running.take() {
            cell.stop(ExitReason::Shutdown);
            let _ = env
                .timeout(
                    CHILD_SHUTDOWN_TIMEOUT,
                    crate::actor::wait_exit(cell.exit_watch()),
                )
                .await;
        }
    }

    /// Records a restart; false if that exceeds the intensity.
    fn note_restart(&mut self, now: Instant) -> bool {
        let window = self.spec.intensity.within;
        while self.recent.front().is_some_and(|&t| now - t >= window) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.total_restarts += 1;
        self.recent.len() <= self.spec.intensity.max_restarts as usize
    }

    async fn child_exited(
        &mut self,
        ctx: &mut Context<Self>,
        exit: ChildExit,
    ) -> Result<(), ActorError> {
        let Some(index) = self.position(&exit.name) else {
            return Ok(()); // removed meanwhile
        };
        if self.children[index].generation != exit.generation
            || self.children[index].running.is_none()
        {
            return Ok(()); // an incarnation we stopped ourselves
        }
        self.children[index].running = None;
        self.children[index].watcher = None;
        let restart = match self.children[index].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => exit.reason.is_failure(),
            Restart::Temporary => false,
        };
        #[cfg(feature = "planted-bugs")]
        let restart =
            restart || self.spec.planted_bug == Some(crate::PlantedBug::RestartTemporaryChild);
        if !restart {
            if self.children[index].spec.restart == Restart::Temporary {
                self.children.remove(index);
            }
            return Ok(());
        }
        let env = ctx.env().clone();
        env.metrics().actors().supervisor_restarts.inc();
        if !self.note_restart(env.now()) {
            ctx.fail(format!(
                "restart intensity exceeded: more than {} restarts in {:?} (last: {} exited with {})",
                self.spec.intensity.max_restarts, self.spec.intensity.within, exit.name, exit.reason
            ));
            return Ok(());
        }
        let delay = self
            .spec
            .restart_delay
            .delay(self.recent.len() as u32, &env);
        if !delay.is_zero() {
            env.sleep(delay).await;
        }
        let affected: Vec<usize> = match self.spec.strategy {
            Strategy::OneForOne => vec![index],
            Strategy::OneForAll => (0..self.children.len()).collect(),
            Strategy::RestForOne => (index..self.children.len()).collect(),
        };
        for &i in affected.iter().rev() {
            self.stop_child(&env, i).await;
        }
        self.children[index].restarts += 1;
        // A temporary sibling stopped on the way is never restarted (as in OTP).
        let dropped =
            |i: usize, child: &Child| i != index && child.spec.restart == Restart::Temporary;
        for &i in &affected {
            if dropped(i, &self.children[i]) {
                continue;
            }
            if let Err(e) = self.start_child(ctx, i) {
                ctx.fail(format!(
                    "child {} could not restart: {e}",
                    self.children[i].spec.name
                ));
                return Ok(());
            }
        }
        let mut i = 0;
        self.children.retain(|child| {
            let keep = !(affected.contains(&i) && dropped(i, child));
            i += 1;
            keep
        });
        Ok(())
    }

    /// The child `name` as running now. One that has exited but whose exit
    /// the supervisor has not handled yet (its watcher's report is still on
    /// the way) is handled first, so a caller never gets an incarnation
    /// that is already gone, and never has to poll for the next one.
    async fn running_child(
        &mut self,
        ctx: &mut Context<Self>,
        name: String,
    ) -> Result<Result<SupervisorReply, SupervisorError>, ActorError> {
        let Some(index) = self.position(&name) else {
            return Ok(Err(SupervisorError::NoSuchChild(name)));
        };
        let child = &self.children[index];
        let exit = child
            .running
            .as_ref()
            .and_then(|cell| crate::actor::exited(&cell.exit_watch()));
        if let Some(reason) = exit {
            let exit = ChildExit {
                name: name.clone(),
                generation: child.generation,
                reason,
            };
            // The watcher's own report of this exit arrives later and is
            // ignored: the restart bumps the generation.
            self.child_exited(ctx, exit).await?;
        }
        Ok(match self.position(&name) {
            None => Err(SupervisorError::NoSuchChild(name)),
            Some(index) => match &self.children[index].running {
                Some(cell) => Ok(SupervisorReply::Child(RunningChild(cell.clone()))),
                None => Err(SupervisorError::NotRunning(name)),
            },
        })
    }

    fn stats(&self) -> SupervisorStats {
        SupervisorStats {
            children: self
                .children
                .iter()
                .map(|c| ChildStats {
                    name: c.spec.name.clone(),
                    id: c.running.as_ref().map(|cell| cell.id().clone()),
                    restarts: c.restarts,
                })
                .collect(),
            total_restarts: self.total_restarts,
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type Reply = Result<SupervisorReply, SupervisorError>;

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let specs = std::mem::take(&mut self.spec.children);
        for spec in specs {
            self.children.push(Child::new(spec));
            let index = self.children.len() - 1;
            if let Err(e) = self.start_child(ctx, index) {
                let env = ctx.env().clone();
                for i in (0..index).rev() {
                    self.stop_child(&env, i).await;
                }
                return Err(ActorError::new(format!(
                    "child {} failed to start: {e}",
                    self.children[index].spec.name
                )));
            }
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: SupervisorMsg,
    ) -> Result<Self::Reply, ActorError> {
        let env = ctx.env().clone();
        Ok(match msg {
            SupervisorMsg::ChildExited(exit) => {
                self.child_exited(ctx, exit).await?;
                Ok(SupervisorReply::Done)
            }
            SupervisorMsg::AddChild(spec) => {
                if self.position(&spec.name).is_some() {
                    return Ok(Err(SupervisorError::DuplicateChild(spec.name)));
                }
                self.children.push(Child::new(spec));
                let index = self.children.len() - 1;
                match self.start_child(ctx, index) {
                    Ok(id) => Ok(SupervisorReply::Started(id)),
                    Err(e) => {
                        self.children.pop();
                        Err(SupervisorError::StartFailed(e))
                    }
                }
            }
            SupervisorMsg::RemoveChild(name) => match self.position(&name) {
                None => Err(SupervisorError::NoSuchChild(name)),
                Some(index) => {
                    self.stop_child(&env, index).await;
                    self.children.remove(index);
                    Ok(SupervisorReply::Done)
                }
            },
            SupervisorMsg::RestartChild(name) => match self.position(&name) {
                None => Err(SupervisorError::NoSuchChild(name)),
                Some(index) => {
                    self.stop_child(&env, index).await;
                    self.start_child(ctx, index)
                        .map(SupervisorReply::Started)
                        .map_err(SupervisorError::StartFailed)
                }
            },
            SupervisorMsg::Stats => Ok(SupervisorReply::Stats(self.stats())),
            SupervisorMsg::Child(name) => self.running_child(ctx, name).await?,
        })
    }

    async fn post_stop(&mut self, ctx: &mut Context<Self>, _reason: &ExitReason) {
        let env = ctx.env().clone();
        for index in (0..self.children.len()).rev() {
            self.stop_child(&env, index).await;
        }
    }
}

impl fmt::Debug for ChildSpecs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| &c.spec.name))
            .finish()
    }
}

struct ChildSpecs<'a>(&'a [Child]);

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.spec.strategy)
            .field("children", &ChildSpecs(&self.children))
            .finish()
    }
}

fn flatten(
    result: Result<Result<SupervisorReply, SupervisorError>, AskError>,
) -> Result<SupervisorReply, SupervisorError> {
    result.map_err(SupervisorError::Ask)?
}

impl ActorRef<Supervisor> {
    /// Starts and supervises another child; returns its id.
    pub async fn add_child(
        &self,
        spec: ChildSpec,
        timeout: Duration,
    ) -> Result<ActorId, SupervisorError> {
        match flatten(self.ask(SupervisorMsg::AddChild(spec), timeout).await)? {
            SupervisorReply::Started(id) => Ok(id),
            other => unreachable!("add_child answered {other:?}"),
        }
    }

    /// Stops a child and forgets it.
    pub async fn remove_child(&self, name: &str, timeout: Duration) -> Result<(), SupervisorError> {
        flatten(
            self.ask(SupervisorMsg::RemoveChild(name.to_string()), timeout)
                .await,
        )
        .map(drop)
    }

    /// Restarts a child now; returns the new incarnation's id.
    pub async fn restart_child(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ActorId, SupervisorError> {
        match flatten(
            self.ask(SupervisorMsg::RestartChild(name.to_string()), timeout)
                .await,
        )? {
            SupervisorReply::Started(id) => Ok(id),
            other => unreachable!("restart_child answered {other:?}"),
        }
    }

    /// The child `name`, as running now: no polling and no sleeping while
    /// it restarts, since the supervisor answers only once it has handled
    /// an exit it has not yet seen (restarting the child, after its
    /// backoff, if its policy says so). A ref it returns may still stop
    /// later; ask again then.
    pub async fn child<A: Actor>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ActorRef<A>, SupervisorError> {
        match flatten(
            self.ask(SupervisorMsg::Child(name.to_string()), timeout)
                .await,
        )? {
            SupervisorReply::Child(child) => {
                child
                    .0
                    .actor_ref::<A>()
                    .ok_or_else(|| SupervisorError::WrongType {
                        name: name.to_string(),
                        expected: std::any::type_name::<A>(),
                    })
            }
            other => unreachable!("child answered {other:?}"),
        }
    }

    /// The supervisor's report on its children.
    pub async fn stats(&self, timeout: Duration) -> Result<SupervisorStats, SupervisorError> {
        match flatten(self.ask(SupervisorMsg::Stats, timeout).await)? {
            SupervisorReply::Stats(stats) => Ok(stats),
            other => unreachable!("stats answered {other:?}"),
        }
    }
}
