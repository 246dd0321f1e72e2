//! Version negotiation. Pure: no I/O. Each connection learns the broker's ranges from
//! ApiVersions; a request then uses the highest version inside both the broker's range and the
//! range this client implements (which never exceeds what `kafka-protocol` encodes). An API with
//! no common version is [`Error::Unsupported`].

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;

use crate::Error;

/// (api, lowest, highest) version this client builds requests for. The lower bounds are where
/// a request's shape stops being worth supporting (Kafka 4 dropped older versions anyway); the
/// upper bounds are what the request builders gate fields for.
const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 1, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 2, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 1, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The range this client implements for `key`, clamped to the codec's range. APIs not in the
/// table are sent at any version both the codec and the broker know (for [`crate::Client::send`]).
pub(crate) fn implemented(key: ApiKey) -> (i16, i16) {
    let codec = key.valid_versions();
    match IMPLEMENTED.iter().find(|(k, _, _)| *k == key) {
        Some((_, min, max)) => ((*min).max(codec.min), (*max).min(codec.max)),
        None => (codec.min, codec.max),
    }
}

/// The name used in errors (`"CreateTopics"`).
pub(crate) fn api_name(key: ApiKey) -> &'static str {
    macro_rules! names {
        ($($k:ident),* $(,)?) => {
            match key {
                $(ApiKey::$k => stringify!($k),)*
                _ => "Request",
            }
        };
    }
    names!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        DescribeConfigs,
        AlterConfigs,
        CreatePartitions,
        DeleteGroups,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        DescribeCluster,
        DescribeQuorum,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        SaslHandshake,
        SaslAuthenticate,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
    )
}

/// What one broker advertised in ApiVersions: api key → (min, max).
#[derive(Debug, Clone, Default)]
pub(crate) struct BrokerVersions(HashMap<i16, (i16, i16)>);

impl BrokerVersions {
    pub(crate) fn new(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        BrokerVersions(
            ranges
                .into_iter()
                .map(|(key, min, max)| (key, (min, max)))
                .collect(),
        )
    }

    /// The ranges of an ApiVersions answer. A range that cannot be (a negative or inverted one)
    /// means the answer is garbled, so the connection must not be used.
    pub(crate) fn advertised(
        ranges: impl IntoIterator<Item = (i16, i16, i16)>,
    ) -> Result<Self, Error> {
        let versions = BrokerVersions::new(ranges);
        if let Some((key, (min, max))) = versions
            .0
            .iter()
            .find(|(_, (min, max))| *min < 0 || min > max)
        {
            return Err(Error::Protocol(format!(
                "ApiVersions: api {key} advertised as versions {min}-{max}"
            )));
        }
        Ok(versions)
    }

    /// The broker's advertised range for `key`.
    pub(crate) fn range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.0.get(&(key as i16)).copied()
    }

    /// The version to use for `key`: the highest both sides support.
    pub(crate) fn negotiate(&self, key: ApiKey) -> Result<i16, Error> {
        let api = api_name(key);
        let Some((broker_min, broker_max)) = self.range(key) else {
            return Err(Error::Unsupported {
                api,
                reason: "the broker does not advertise it".into(),
            });
        };
        let (ours_min, ours_max) = implemented(key);
        let version = broker_max.min(ours_max);
        if version < broker_min.max(ours_min) {
            return Err(Error::Unsupported {
                api,
                reason: format!(
                    "the broker serves versions {broker_min}-{broker_max}, this client {ours_min}-{ours_max}"
                ),
            });
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strata() -> BrokerVersions {
        BrokerVersions::new([
            (ApiKey::Produce as i16, 0, 11),
            (ApiKey::Fetch as i16, 4, 16),
            (ApiKey::Metadata as i16, 0, 12),
            (ApiKey::DescribeCluster as i16, 0, 1),
        ])
    }

    #[test]
    fn picks_the_highest_common_version() {
        let b = strata();
        assert_eq!(b.negotiate(ApiKey::Produce).unwrap(), 11);
        assert_eq!(b.negotiate(ApiKey::Fetch).unwrap(), 16);
        assert_eq!(b.negotiate(ApiKey::Metadata).unwrap(), 12);
        assert_eq!(b.negotiate(ApiKey::DescribeCluster).unwrap(), 1);
        // A broker newer than the codec is capped at what we implement.
        let newer = BrokerVersions::new([(ApiKey::Metadata as i16, 0, 99)]);
        assert_eq!(newer.negotiate(ApiKey::Metadata).unwrap(), 13);
    }

    #[test]
    fn missing_or_disjoint_ranges_are_unsupported() {
        let b = strata();
        assert!(matches!(
            b.negotiate(ApiKey::CreateAcls),
            Err(Error::Unsupported {
                api: "CreateAcls",
                ..
            })
        ));
        let old = BrokerVersions::new([(ApiKey::Produce as i16, 0, 2)]);
        let err = old.negotiate(ApiKey::Produce).unwrap_err();
        assert!(err.to_string().contains("0-2"), "{err}");
        let future = BrokerVersions::new([(ApiKey::Produce as i16, 20, 25)]);
        assert!(future.negotiate(ApiKey::Produce).is_err());
    }

    #[test]
    fn garbled_advertisements_are_refused() {
        assert!(BrokerVersions::advertised([(0, 3, 11), (1, 4, 16)]).is_ok());
        // A flipped bit in a lower bound (Produce 512-11) or a negative version.
        for bad in [(0, 512, 11), (1, -2, 16)] {
            let err = BrokerVersions::advertised([bad]).unwrap_err();
            assert!(matches!(err, Error::Protocol(_)), "{err}");
        }
    }

    #[test]
    fn implemented_ranges_stay_within_the_codec() {
        for (key, min, max) in IMPLEMENTED {
            let codec = key.valid_versions();
            let (lo, hi) = implemented(*key);
            assert!(lo <= hi, "{key:?}");
            assert!(lo >= codec.min && hi <= codec.max, "{key:?}");
            assert!(*min <= *max, "{key:?}");
        }
    }
}
