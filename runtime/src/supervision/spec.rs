//! What a supervisor is told: its strategy, limits, backoff and children.

use crate::actor::ChildCell;
use crate::actor::facet::FacetSpec;
use crate::actor::{Actor, ActorSystem, SpawnError, SpawnOptions};
use crate::retry::Backoff;
use crate::seams::Rng;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which children restart when one exits and must be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped (last first) and all restarted.
    OneForAll,
    /// The child that exited and every child started after it.
    RestForOne,
}

/// When a child is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after a failure (not after a normal exit or a shutdown).
    Transient,
    /// Never; its spec is dropped when it exits.
    Temporary,
}

/// Restart intensity: more than `max_restarts` restarts within `within`
/// and the supervisor stops its children and fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed in the window.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            within: Duration::from_secs(5),
        }
    }
}

/// How long to wait before a restart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RestartDelay {
    /// Restart at once.
    None,
    /// Always wait this long.
    Fixed(Duration),
    /// Wait as the backoff says for the `n`-th restart in the intensity
    /// window: its first pause, doubling with each restart.
    Exponential(Backoff),
}

impl RestartDelay {
    /// The delay before the `recent`-th restart of the window (1-based).
    pub fn delay(&self, recent: u32, rng: &dyn Rng) -> Duration {
        match self {
            RestartDelay::None => Duration::ZERO,
            RestartDelay::Fixed(d) => *d,
            RestartDelay::Exponential(backoff) => backoff.delay(recent, rng),
        }
    }
}

type StartFn =
    Arc<dyn Fn(&ActorSystem, SpawnOptions) -> Result<ChildCell, SpawnError> + Send + Sync>;

/// One child: its name (unique on the node), restart type and how to start it.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) name: String,
    pub(crate) restart: Restart,
    pub(crate) start: StartFn,
    /// Facets made afresh for each (re)start of the child.
    pub(crate) facets: Vec<FacetSpec>,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .finish()
    }
}

impl ChildSpec {
    /// A permanent child actor named `name`, made fresh by `make` at each
    /// (re)start.
    pub fn actor<A: Actor>(name: &str, make: impl Fn() -> A + Send + Sync + 'static) -> Self {
        let owned = name.to_string();
        ChildSpec {
            name: name.to_string(),
            restart: Restart::Permanent,
            start: Arc::new(move |system: &ActorSystem, options| {
                system
                    .spawn_with(&owned, make(), options)
                    .map(|r| ChildCell::of(&r))
            }),
            facets: Vec::new(),
        }
    }

    /// Attaches a facet, made afresh at each (re)start (a restarted child
    /// starts with fresh facets, as with fresh state).
    pub fn with_facet(mut self, facet: FacetSpec) -> Self {
        self.facets.push(facet);
        self
    }

    /// Starts the child on `system` with its facets.
    pub(crate) fn start(&self, system: &ActorSystem) -> Result<ChildCell, SpawnError> {
        let mut options = SpawnOptions::default();
        for spec in &self.facets {
            let facet = spec
                .build(system.facet_types(), &self.name)
                .map_err(|e| SpawnError::Facet(e.into()))?;
            options.facets.push(facet);
        }
        (self.start)(system, options)
    }

    /// A nested supervisor named `name`, running `spec`.
    pub fn supervisor(name: &str, spec: SupervisorSpec) -> Self {
        Self::actor(name, move || super::Supervisor::new(spec.clone()))
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A supervisor's configuration.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// Who restarts together.
    pub strategy: Strategy,
    /// When to give up.
    pub intensity: Intensity,
    /// How long to wait before restarting.
    pub restart_delay: RestartDelay,
    /// The children, started in order, stopped in reverse.
    pub children: Vec<ChildSpec>,
    /// A deliberately broken variant, for the simulator's tests: always
    /// present (so enabling the feature anywhere in a build breaks no
    /// struct literal), acted on only with the `planted-bugs` feature.
    #[doc(hidden)]
    pub planted_bug: Option<crate::PlantedBug>,
}

impl SupervisorSpec {
    /// A spec with no children yet.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: Intensity::default(),
            restart_delay: RestartDelay::None,
            children: Vec::new(),
            planted_bug: None,
        }
    }

    /// Adds a child.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    /// Sets how long to wait before each restart.
    pub fn restart_delay(mut self, delay: RestartDelay) -> Self {
        self.restart_delay = delay;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seams::SeededRng;

    #[test]
    fn restart_delays_grow_and_stay_bounded() {
        let rng = SeededRng::new(1);
        let ms = Duration::from_millis;
        assert_eq!(RestartDelay::None.delay(3, &rng), Duration::ZERO);
        assert_eq!(RestartDelay::Fixed(ms(5)).delay(9, &rng), ms(5));
        let exp = RestartDelay::Exponential(Backoff::new(ms(10), ms(100)).with_jitter(0.0));
        let delays: Vec<Duration> = (1..=6).map(|n| exp.delay(n, &rng)).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]);
        let jittered = RestartDelay::Exponential(Backoff::new(ms(100), ms(1000)).with_jitter(0.5));
        let d = jittered.delay(1, &rng);
        assert!(d >= ms(50) && d <= ms(150), "{d:?}");
        assert!(exp.delay(u32::MAX, &rng) <= ms(100));
    }
}
