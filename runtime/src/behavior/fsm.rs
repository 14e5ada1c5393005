//! GenFSM: a state machine run as an actor, with state timeouts.

use crate::actor::{Actor, ActorError, ActorRef, AskError, Context, ExitReason, TimerId};
use std::fmt::Debug;
use std::time::Duration;

/// What a state machine reacts to.
#[derive(Debug)]
pub enum FsmInput<E> {
    /// An event someone sent.
    Event(E),
    /// The current state lasted as long as its [`GenFsm::state_timeout`].
    StateTimeout,
}

/// What a state machine does after an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition<S> {
    /// Move to this state (entering it arms its timeout, if any).
    Next(S),
    /// Stay; a running state timeout keeps running.
    Keep,
    /// Stop the machine (a normal exit).
    Stop,
}

/// A finite state machine, as Erlang's `gen_statem`: state and event give
/// the next state. Run it with [`Fsm::new`].
pub trait GenFsm: Send + 'static {
    /// The states.
    type State: Clone + PartialEq + Debug + Send + 'static;
    /// The events.
    type Event: Send + 'static;

    /// The state the machine starts in.
    fn initial_state(&self) -> Self::State;

    /// Reacts to an input in `state`.
    fn handle_event(
        &mut self,
        state: &Self::State,
        input: FsmInput<Self::Event>,
    ) -> Result<Transition<Self::State>, ActorError>;

    /// How long `state` may last before [`FsmInput::StateTimeout`] arrives.
    /// Leaving the state cancels it.
    fn state_timeout(&self, state: &Self::State) -> Option<Duration> {
        let _ = state;
        None
    }
}

/// Identifies one armed state timeout; only the machine makes them, so a
/// stale timeout (from a state already left) is recognised and ignored.
#[derive(Debug)]
pub struct TimerToken(u64);

/// What an [`Fsm`] actor receives.
#[derive(Debug)]
pub enum FsmMsg<E> {
    /// An event; the reply is the state after it.
    Event(E),
    /// Asks for the current state.
    GetState,
    /// A state timeout fired (sent by the machine to itself).
    Timeout(TimerToken),
}

/// An actor running a [`GenFsm`].
pub struct Fsm<M: GenFsm> {
    machine: M,
    state: M::State,
    generation: u64,
    /// The current state's timeout, on the actor's timers (so the node's
    /// one timer service, as ask deadlines).
    timer: Option<TimerId>,
}

impl<M: GenFsm> Fsm<M> {
    /// Wraps `machine`, starting in its initial state.
    pub fn new(machine: M) -> Self {
        let state = machine.initial_state();
        Fsm {
            machine,
            state,
            generation: 0,
            timer: None,
        }
    }

    /// Entered a state: cancel the old timeout, arm the new one.
    fn enter(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        if let Some(after) = self.machine.state_timeout(&self.state) {
            let token = TimerToken(self.generation);
            // One timer at a time, so the default bound is never reached;
            // if a lowered bound refuses it, the machine would wait forever
            // in this state, so it fails instead (its supervisor decides).
            self.timer = match ctx.send_after(after, FsmMsg::Timeout(token)) {
                Ok(timer) => Some(timer),
                Err(e) => {
                    ctx.fail(format!("the state timeout could not be armed: {e}"));
                    None
                }
            };
        }
    }
}

impl<M: GenFsm> Actor for Fsm<M> {
    type Msg = FsmMsg<M::Event>;
    type Reply = M::State;

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.enter(ctx);
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: Self::Msg,
    ) -> Result<M::State, ActorError> {
        let input = match msg {
            FsmMsg::GetState => return Ok(self.state.clone()),
            FsmMsg::Event(event) => FsmInput::Event(event),
            FsmMsg::Timeout(TimerToken(token)) if token == self.generation => {
                FsmInput::StateTimeout
            }
            FsmMsg::Timeout(_) => return Ok(self.state.clone()), // a state already left
        };
        match self.machine.handle_event(&self.state, input)? {
            Transition::Next(next) if next != self.state => {
                self.state = next;
                self.enter(ctx);
            }
            Transition::Next(_) | Transition::Keep => {}
            Transition::Stop => ctx.stop(),
        }
        Ok(self.state.clone())
    }

    async fn post_stop(&mut self, ctx: &mut Context<Self>, _reason: &ExitReason) {
        // The run's timers end with it anyway; this only says so early.
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
    }
}

impl<M: GenFsm> ActorRef<Fsm<M>> {
    /// Sends `event` and returns the state after it.
    pub async fn send_event(
        &self,
        event: M::Event,
        timeout: Duration,
    ) -> Result<M::State, AskError> {
        self.ask(FsmMsg::Event(event), timeout).await
    }

    /// The machine's current state.
    pub async fn state(&self, timeout: Duration) -> Result<M::State, AskError> {
        self.ask(FsmMsg::GetState, timeout).await
    }
}
