//! What the facet and observability benchmarks share: the hand-written
//! ask floor (a tokio mpsc + oneshot round trip) and the median of rounds.

/// ns per round trip of `asks` sequential tokio mpsc + oneshot exchanges.
pub async fn floor_round(asks: u64) -> f64 {
    use tokio::sync::{mpsc, oneshot};
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u64>>(1024);
    tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let _ = reply.send(0);
        }
    });
    let t = std::time::Instant::now();
    for _ in 0..asks {
        let (reply, answer) = oneshot::channel();
        tx.send(reply).await.unwrap();
        answer.await.unwrap();
    }
    t.elapsed().as_nanos() as f64 / asks as f64
}

/// The median of `samples` (NaN sorts last).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    // None measured (a configuration left out): not a number.
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}
