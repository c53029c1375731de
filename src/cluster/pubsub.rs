//! The Redis transport, for nodes that share no broadcast domain: the same sealed packets,
//! published on `chorus:{cluster}:all` (broadcast) and `chorus:{cluster}:node:{id}` (unicast).
//! The subscriber reconnects with backoff when Redis goes away; what was published meanwhile is
//! recovered like any lost packet (heartbeats reveal the gap, the origin re-sends).

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Inbound;

/// Publishing half of the Redis transport.
pub struct PubSub {
    client: redis::Client,
    publish: ConnectionManager,
    all: String,
    prefix: String,
}

impl PubSub {
    pub async fn connect(url: &str, cluster: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let publish = ConnectionManager::new(client.clone()).await?;
        Ok(Self {
            client,
            publish,
            all: format!("chorus:{cluster}:all"),
            prefix: format!("chorus:{cluster}:node:"),
        })
    }

    async fn publish(&self, channel: &str, packet: &[u8]) {
        let mut conn = self.publish.clone();
        let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(packet)
            .query_async(&mut conn)
            .await;
        if let Err(err) = sent {
            tracing::warn!(%err, "cluster: redis publish failed");
        }
    }

    pub async fn broadcast(&self, packet: &[u8]) {
        self.publish(&self.all, packet).await;
    }

    pub async fn unicast(&self, node: &str, packet: &[u8]) {
        self.publish(&format!("{}{node}", self.prefix), packet)
            .await;
    }

    /// Subscribes (and re-subscribes after any failure) for `node`, feeding `inbound` until
    /// `stop`.
    pub fn spawn_receiver(
        &self,
        node: &str,
        inbound: mpsc::Sender<Inbound>,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) {
        let client = self.client.clone();
        let channels = [self.all.clone(), format!("{}{node}", self.prefix)];
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let subscribed = tokio::select! {
                    subscribed = subscribe(&client, &channels, &inbound) => subscribed,
                    _ = stop.cancelled() => return,
                };
                match subscribed {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(%err, "cluster: redis subscription lost; reconnecting");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

/// Runs one subscription until Redis drops it (`Err`) or the node stops (`Ok`).
async fn subscribe(
    client: &redis::Client,
    channels: &[String],
    inbound: &mpsc::Sender<Inbound>,
) -> Result<(), redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    tracing::info!("cluster: subscribed to redis");
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let packet = Inbound {
            bytes: msg.get_payload_bytes().to_vec(),
            from: None,
        };
        if inbound.send(packet).await.is_err() {
            return Ok(());
        }
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Io,
        "subscription ended",
    )))
}
