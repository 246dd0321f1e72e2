//! The [`Client`]: a cheap-to-clone handle owning the broker connections, the metadata cache
//! and the group-coordinator cache, plus the routing and retry rules every call uses.
//! Requests go where Kafka wants them (any broker, a given broker, the controller, a group's
//! coordinator); retriable failures are retried with exponential backoff up to
//! `ClientConfig::retries` times, after invalidating whatever cached routing may have caused
//! them; fatal failures are returned at once.
//!
//! Connections: per broker address one for each [`Channel`] (control, fetch, produce), opened
//! on first use and replaced when it breaks; requests on a connection are pipelined (see
//! `connection`), but brokers answer them one at a time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use parking_lot::Mutex;
use rand::seq::SliceRandom;

use crate::connection::{api_key, Connection};
use crate::metadata::{BrokerInfo, ClusterDescription, ClusterMetadata, MetadataCache};
use crate::versions::api_name;
use crate::{Admin, ClientConfig, Error, TopicMetadata};

/// Where a request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any reachable broker (an open connection is preferred).
    Any,
    /// The broker with this id.
    Broker(i32),
    /// The controller named by Metadata (KRaft brokers forward to the quorum themselves).
    Controller,
    /// The coordinator of this consumer group (found with FindCoordinator).
    GroupCoordinator(String),
}

/// An async Kafka client. Clones share connections and caches.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// The connection held for one broker address and channel; the async mutex makes concurrent
/// callers share one connection attempt.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// Which of a broker's connections a request uses. Brokers answer a connection's requests
/// one at a time (Kafka mutes a channel until its response is sent), so a long-polling fetch
/// or a produce waiting for replication would hold back every admin or metadata request
/// behind it: fetches, produces and everything else get a connection each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Channel {
    Control,
    Fetch,
    Produce,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    slots: Mutex<HashMap<(String, Channel), Slot>>,
    metadata: Mutex<MetadataCache>,
    /// Serialises metadata refreshes so that a burst of failures triggers one refresh.
    refresh: tokio::sync::Mutex<()>,
    /// group id → (coordinator node id, address).
    coordinators: Mutex<HashMap<String, (i32, String)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.config.bootstrap)
            .field("client_id", &self.inner.config.client_id)
            .finish()
    }
}

impl Client {
    /// Connects to a bootstrap broker and fetches the cluster's brokers. Fails after the
    /// configured retries when no bootstrap broker can be reached.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        if config.bootstrap.is_empty() {
            return Err(Error::NoBrokerAvailable);
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                slots: Mutex::new(HashMap::new()),
                metadata: Mutex::new(MetadataCache::default()),
                refresh: tokio::sync::Mutex::new(()),
                coordinators: Mutex::new(HashMap::new()),
            }),
        };
        client
            .retry("bootstrap", || client.fetch_metadata(Some(&[])))
            .await?;
        Ok(client)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Fetches metadata for `topics` (`None` = every topic) and refreshes the cache with it.
    /// Topics that do not exist are absent from the result.
    pub async fn metadata(&self, topics: Option<&[String]>) -> Result<ClusterMetadata, Error> {
        self.retry("Metadata", || self.fetch_metadata(topics)).await
    }

    /// The cluster id, controller and brokers, from DescribeCluster, or from Metadata when the
    /// broker does not serve DescribeCluster.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, Error> {
        self.retry("DescribeCluster", || async {
            let conn = self.any_connection().await?;
            if conn.version(ApiKey::DescribeCluster).is_err() {
                let meta = self.fetch_metadata_on(&conn, Some(&[])).await?;
                return Ok(ClusterDescription {
                    cluster_id: meta.cluster_id.unwrap_or_default(),
                    controller_id: meta.controller_id.unwrap_or(-1),
                    brokers: meta.brokers,
                });
            }
            let (_, resp) = conn
                .request(|_| DescribeClusterRequest::default(), self.timeout())
                .await?;
            Error::check(
                "DescribeCluster",
                resp.error_code,
                resp.error_message.as_deref(),
            )?;
            let mut brokers: Vec<BrokerInfo> = resp
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect();
            brokers.sort_by_key(|b| b.id);
            Ok(ClusterDescription {
                cluster_id: resp.cluster_id.to_string(),
                controller_id: resp.controller_id.0,
                brokers,
            })
        })
        .await
    }

    /// Admin operations (topics, configs, groups). Cheap: shares this client.
    pub fn admin(&self) -> Admin {
        Admin {
            client: self.clone(),
        }
    }

    /// Sends any request to `target` at the highest version both sides support; `build`
    /// receives that version and must only set fields valid at it. Retries transport failures
    /// (the response's own error codes are the caller's to interpret). Uses the broker's
    /// control connection, so a request the broker holds (a JoinGroup waiting for a rebalance)
    /// delays admin calls to that broker meanwhile.
    pub async fn send<R: Request>(
        &self,
        target: Target,
        build: impl Fn(i16) -> R,
    ) -> Result<(i16, R::Response), Error> {
        self.retry(api_name(api_key::<R>()?), || async {
            let conn = self.connection_for(&target).await?;
            let result = conn.request(&build, self.timeout()).await;
            if let (Err(e), Target::GroupCoordinator(group)) = (&result, &target) {
                if e.invalidates_coordinator() {
                    self.forget_coordinator(group);
                }
            }
            result
        })
        .await
    }

    // ----- crate-internal plumbing -----

    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.inner.config.request_timeout
    }

    /// Runs `op` until it succeeds, fails fatally, or the retries are spent.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.retry_if(what, Error::is_retriable, op).await
    }

    /// [`Client::retry`] with the caller's notion of retriable (admin calls treat an unknown
    /// topic as final, the data path as metadata still propagating).
    pub(crate) async fn retry_if<T, F, Fut>(
        &self,
        what: &str,
        retriable: impl Fn(&Error) -> bool,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if e.invalidates_metadata() {
                        self.invalidate_metadata();
                    }
                    if !retriable(&e) || attempt >= self.inner.config.retries {
                        return Err(e);
                    }
                    let pause = self.inner.config.backoff(attempt);
                    tracing::debug!(what, attempt, error = %e, ?pause, "retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
            }
        }
    }

    pub(crate) fn invalidate_metadata(&self) {
        self.inner.metadata.lock().invalidate();
    }

    /// A snapshot of the cached metadata (possibly stale).
    pub(crate) fn cached_metadata(&self) -> ClusterMetadata {
        self.inner.metadata.lock().meta.clone()
    }

    /// One Metadata request to any broker; updates the cache.
    async fn fetch_metadata(&self, topics: Option<&[String]>) -> Result<ClusterMetadata, Error> {
        let conn = self.any_connection().await?;
        self.fetch_metadata_on(&conn, topics).await
    }

    async fn fetch_metadata_on(
        &self,
        conn: &Connection,
        topics: Option<&[String]>,
    ) -> Result<ClusterMetadata, Error> {
        let (_, resp) = conn
            .request(|version| metadata_request(version, topics), self.timeout())
            .await?;
        Error::check("Metadata", resp.error_code, None)?;
        let fresh = ClusterMetadata::from_response(resp);
        self.inner.metadata.lock().update(fresh.clone(), topics);
        Ok(fresh)
    }

    /// Cached metadata that is fresh and knows every topic in `topics`, refreshed first when
    /// needed (also refreshing every topic already cached when the cache went stale).
    pub(crate) async fn metadata_for(&self, topics: &[String]) -> Result<ClusterMetadata, Error> {
        let max_age = self.inner.config.metadata_max_age;
        let wanted = |cache: &MetadataCache| -> Option<Vec<String>> {
            if cache.needs_refresh(max_age) {
                let mut all: Vec<String> = cache.meta.topics.keys().cloned().collect();
                all.extend(topics.iter().cloned());
                all.sort();
                all.dedup();
                return Some(all);
            }
            let missing: Vec<String> = topics
                .iter()
                .filter(|t| !cache.meta.topics.contains_key(*t))
                .cloned()
                .collect();
            (!missing.is_empty()).then_some(missing)
        };
        if wanted(&self.inner.metadata.lock()).is_none() {
            return Ok(self.cached_metadata());
        }
        let _one_refresh = self.inner.refresh.lock().await;
        // Whoever held the lock may have refreshed what we need.
        let request = wanted(&self.inner.metadata.lock());
        if let Some(names) = request {
            self.fetch_metadata(Some(&names)).await?;
        }
        Ok(self.cached_metadata())
    }

    /// The metadata of one topic, or UNKNOWN_TOPIC_OR_PARTITION.
    pub(crate) async fn topic_metadata(&self, topic: &str) -> Result<TopicMetadata, Error> {
        let meta = self.metadata_for(&[topic.to_string()]).await?;
        meta.topics.get(topic).cloned().ok_or_else(|| {
            Error::kafka(
                "Metadata",
                kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                Some(&format!("topic {topic} does not exist")),
            )
        })
    }

    pub(crate) async fn connection_for(&self, target: &Target) -> Result<Arc<Connection>, Error> {
        match target {
            Target::Any => self.any_connection().await,
            Target::Broker(id) => self.broker_connection(*id).await,
            Target::Controller => self.controller_connection().await,
            Target::GroupCoordinator(group) => self.coordinator_connection(group).await,
        }
    }

    /// The connection to `addr`, opened (with the ApiVersions handshake) when there is none
    /// or the previous one broke.
    pub(crate) async fn connection_to(&self, addr: &str) -> Result<Arc<Connection>, Error> {
        self.channel_to(addr, Channel::Control).await
    }

    /// The connection to `addr` for `channel`.
    async fn channel_to(&self, addr: &str, channel: Channel) -> Result<Arc<Connection>, Error> {
        let slot = self
            .inner
            .slots
            .lock()
            .entry((addr.to_string(), channel))
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        if let Some(conn) = held.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        *held = None;
        let config = &self.inner.config;
        let conn = Arc::new(
            Connection::open_secured(
                addr,
                &config.client_id,
                config.connect_timeout,
                &config.security,
            )
            .await?,
        );
        tracing::debug!(broker = addr, "connected");
        *held = Some(conn.clone());
        Ok(conn)
    }

    /// The connection to broker `id`, by the address Metadata gives for it.
    pub(crate) async fn broker_connection(&self, id: i32) -> Result<Arc<Connection>, Error> {
        self.broker_channel(id, Channel::Control).await
    }

    /// The connection to broker `id` for `channel`.
    pub(crate) async fn broker_channel(
        &self,
        id: i32,
        channel: Channel,
    ) -> Result<Arc<Connection>, Error> {
        let mut addr = self.cached_metadata().broker(id).map(BrokerInfo::address);
        if addr.is_none() {
            let meta = self.metadata_for(&[]).await?;
            addr = match meta.broker(id) {
                Some(b) => Some(b.address()),
                None => self
                    .fetch_metadata(Some(&[]))
                    .await?
                    .broker(id)
                    .map(BrokerInfo::address),
            };
        }
        match addr {
            Some(addr) => self.channel_to(&addr, channel).await,
            None => {
                tracing::debug!(broker = id, "broker is not in the cluster metadata");
                Err(Error::NoBrokerAvailable)
            }
        }
    }

    /// An open connection if there is one, else the first broker (known brokers in random
    /// order, then the bootstrap list) that accepts a connection.
    pub(crate) async fn any_connection(&self) -> Result<Arc<Connection>, Error> {
        let slots: Vec<Slot> = self
            .inner
            .slots
            .lock()
            .iter()
            .filter(|((_, channel), _)| *channel == Channel::Control)
            .map(|(_, slot)| slot.clone())
            .collect();
        for slot in slots {
            if let Ok(held) = slot.try_lock() {
                if let Some(conn) = held.as_ref().filter(|c| !c.is_closed()) {
                    return Ok(conn.clone());
                }
            }
        }
        let mut known: Vec<String> = self
            .cached_metadata()
            .brokers
            .iter()
            .map(BrokerInfo::address)
            .collect();
        let mut bootstrap = self.inner.config.bootstrap.clone();
        {
            let mut rng = rand::rng();
            known.shuffle(&mut rng);
            bootstrap.shuffle(&mut rng);
        }
        let mut last_error = Error::NoBrokerAvailable;
        let mut tried = std::collections::HashSet::new();
        for addr in known.into_iter().chain(bootstrap) {
            if !tried.insert(addr.clone()) {
                continue;
            }
            match self.connection_to(&addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    tracing::debug!(broker = %addr, error = %e, "broker unreachable");
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    async fn controller_connection(&self) -> Result<Arc<Connection>, Error> {
        let meta = self.metadata_for(&[]).await?;
        match meta.controller_id {
            Some(id) => self.broker_connection(id).await,
            None => self.any_connection().await,
        }
    }

    async fn coordinator_connection(&self, group: &str) -> Result<Arc<Connection>, Error> {
        let cached = self.inner.coordinators.lock().get(group).cloned();
        let (_, addr) = match cached {
            Some(c) => c,
            None => {
                let found = self.find_coordinator(group).await?;
                self.inner
                    .coordinators
                    .lock()
                    .insert(group.to_string(), found.clone());
                found
            }
        };
        self.connection_to(&addr).await
    }

    pub(crate) fn forget_coordinator(&self, group: &str) {
        self.inner.coordinators.lock().remove(group);
    }

    /// FindCoordinator for a consumer group: (node id, address).
    async fn find_coordinator(&self, group: &str) -> Result<(i32, String), Error> {
        let conn = self.any_connection().await?;
        let key = StrBytes::from_string(group.to_string());
        let (version, resp) = conn
            .request(
                |version| {
                    let req = FindCoordinatorRequest::default();
                    if version >= 4 {
                        req.with_coordinator_keys(vec![key.clone()])
                    } else {
                        req.with_key(key.clone())
                    }
                },
                self.timeout(),
            )
            .await?;
        let (code, message, node, host, port) = if version >= 4 {
            let c = resp.coordinators.into_iter().next().ok_or_else(|| {
                Error::Protocol("FindCoordinator response names no coordinator".into())
            })?;
            (c.error_code, c.error_message, c.node_id.0, c.host, c.port)
        } else {
            (
                resp.error_code,
                resp.error_message,
                resp.node_id.0,
                resp.host,
                resp.port,
            )
        };
        Error::check("FindCoordinator", code, message.as_deref())?;
        let broker = BrokerInfo {
            id: node,
            host: host.to_string(),
            port,
            rack: None,
        };
        Ok((node, broker.address()))
    }

    /// Sends to the group's coordinator; a coordinator error forgets the cached coordinator
    /// so that the retry looks it up again.
    pub(crate) async fn coordinator_request<R: Request, T>(
        &self,
        group: &str,
        build: impl Fn(i16) -> R,
        check: impl Fn(i16, R::Response) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let api = api_name(api_key::<R>()?);
        self.retry(api, || async {
            let result = async {
                let conn = self.coordinator_connection(group).await?;
                let (version, resp) = conn.request(&build, self.timeout()).await?;
                check(version, resp)
            }
            .await;
            if let Err(e) = &result {
                if e.invalidates_coordinator() {
                    self.forget_coordinator(group);
                }
            }
            result
        })
        .await
    }
}

/// A Metadata request for `topics` (`None` = all) that never auto-creates topics.
fn metadata_request(version: i16, topics: Option<&[String]>) -> MetadataRequest {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|n| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
            })
            .collect()
    });
    let req = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        req.with_allow_auto_topic_creation(false)
    } else {
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn metadata_requests_encode_at_every_version() {
        for version in 1..=13 {
            for topics in [None, Some(&["a".to_string()][..]), Some(&[][..])] {
                let req = metadata_request(version, topics);
                let mut buf = bytes::BytesMut::new();
                req.encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
        assert!(!metadata_request(4, None).allow_auto_topic_creation);
        assert!(metadata_request(4, None).topics.is_none());
    }
}
