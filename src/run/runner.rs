//! Runs for the scheduler: one thread with one runtime where every scheduled run executes,
//! so a fire costs a task, not a thread and a runtime. (A run's future borrows across its
//! drills' streams, which the compiler cannot prove `Send`; a local task set needs not.)

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Finished, RunOptions};
use crate::exit::Failure;
use crate::scenario::Loaded;

type Job = (Loaded, oneshot::Sender<Result<Finished, Failure>>);

/// A handle to the runner thread; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Runner {
    /// Starts the thread; it ends when every handle is dropped and its runs have finished.
    pub fn start(opts: RunOptions) -> Result<Self, String> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the runner: {e}"))?;
        let opts = Arc::new(opts);
        std::thread::Builder::new()
            .name("pgdrill-runs".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    while let Some((loaded, done)) = queue.recv().await {
                        let opts = opts.clone();
                        tokio::task::spawn_local(async move {
                            let _ = done.send(super::run(vec![loaded], &opts).await);
                        });
                    }
                });
                // Runs still going when the last handle dropped finish before the thread ends.
                runtime.block_on(local);
            })
            .map_err(|e| format!("starting the runner: {e}"))?;
        Ok(Self { jobs })
    }

    /// Runs one scenario on the runner thread and waits for it.
    pub async fn run(&self, loaded: Loaded) -> Result<Finished, Failure> {
        let (done, finished) = oneshot::channel();
        self.jobs
            .send((loaded, done))
            .map_err(|_| Failure::error("the runner has stopped"))?;
        finished
            .await
            .map_err(|_| Failure::error("the run ended without a result"))?
    }
}
