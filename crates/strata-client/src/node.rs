//! One connection to one named node, for traffic between Strata processes (a broker's replica
//! fetcher, its controller link) that must reach exactly that node rather than whichever
//! broker a cluster's metadata points at. Versions are negotiated as for every connection.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;

use crate::connection::{api_key, Connection};
use crate::security::Security;
use crate::Error;

/// A negotiated connection to one node.
pub struct NodeConnection {
    conn: Connection,
}

impl NodeConnection {
    /// Connects to `addr` and negotiates versions within `timeout`.
    pub async fn open(addr: &str, client_id: &str, timeout: Duration) -> Result<Self, Error> {
        Ok(NodeConnection {
            conn: Connection::open(addr, client_id, timeout).await?,
        })
    }

    /// Connects to `addr` as `security` says (TLS, SASL) and negotiates versions within
    /// `timeout`.
    pub async fn open_secured(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self, Error> {
        Ok(NodeConnection {
            conn: Connection::open_secured(addr, client_id, timeout, security).await?,
        })
    }

    /// The version a request of `key` is sent at, or [`Error::Unsupported`].
    pub fn version(&self, key: ApiKey) -> Result<i16, Error> {
        self.conn.version(key)
    }

    /// Sends a request built for the negotiated version and returns (version, response).
    pub async fn request<R: Request>(
        &self,
        build: impl FnOnce(i16) -> R,
        timeout: Duration,
    ) -> Result<(i16, R::Response), Error> {
        self.conn.request(build, timeout).await
    }

    /// Sends `req` at `version`.
    pub async fn request_at<R: Request>(
        &self,
        version: i16,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        self.conn
            .request_at(api_key::<R>()?, version, req, timeout)
            .await
    }

    /// False once the connection broke or timed out; open a new one then.
    pub fn is_open(&self) -> bool {
        !self.conn.is_closed()
    }
}
