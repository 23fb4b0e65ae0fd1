//! The `ward/v1` topic tree, built and parsed in one place.
//!
//! | topic | what | who publishes |
//! |---|---|---|
//! | `ward/v1/<site>/<agent-id>/devices` | `ward.observation.v1`, QoS 1 | the agent |
//! | `ward/v1/<site>/<agent-id>/status` | `ward.status.v1`, QoS 1, retained | the agent (and its last will) |
//! | `ward/v1/alerts/<site>` | `ward.alert.v1`, QoS 1 | the collector; `_global` for no site |
//!
//! Topics arrive from the network, so parsing is strict and bounded: exactly the levels above,
//! every variable level non-empty, at most [`MAX_LEVEL_BYTES`], without `/ + #` or control
//! characters, the whole topic at most [`MAX_TOPIC_BYTES`]. Errors are fixed texts that never
//! repeat the topic (a topic is the sender's text: log it escaped, if at all).
//!
//! Who may use which topic is the broker's and the ingest's policy (stricter id rules on top
//! of [`AgentTopic::parse`], the alerts namespace reserved); this module only says what a
//! topic *is*. An agent whose site is literally `alerts` has topics
//! `ward/v1/alerts/<agent-id>/devices`: five levels, so never an alerts topic (four), which is
//! why the alerts filter is [`ALERTS_FILTER`] (one level) and not `ward/v1/alerts/#`.

use std::fmt;

/// The first two levels of every ward topic.
pub const ROOT: &str = "ward/v1";
/// Filter of the agents' observation messages.
pub const DEVICES_FILTER: &str = "ward/v1/+/+/devices";
/// Filter of the agents' retained status messages.
pub const STATUS_FILTER: &str = "ward/v1/+/+/status";
/// Both agent filters: what the collector's ingest subscribes to.
pub const AGENT_FILTERS: [&str; 2] = [DEVICES_FILTER, STATUS_FILTER];
/// The agent filters of one site: `ward/v1/<site>/+/devices` and `ward/v1/<site>/+/status`.
/// Collectors that cannot share a subscription (a NATS cluster: no `$share` groups) split the
/// agents between them by site with these. `site` is checked as a level ([`check_level`]).
pub fn site_filters(site: &str) -> Result<[String; 2], LevelError> {
    check_level(site)?;
    Ok([
        format!("{ROOT}/{site}/+/{}", Kind::Devices.as_str()),
        format!("{ROOT}/{site}/+/{}", Kind::Status.as_str()),
    ])
}
/// Longest site or agent id level, in bytes.
pub const MAX_LEVEL_BYTES: usize = 256;
/// Longest topic MQTT can carry (a 16-bit length).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// The level below [`ROOT`] that holds the alerts.
pub const ALERTS_LEVEL: &str = "alerts";
/// Prefix of every alerts topic: `ward/v1/alerts/`.
pub const ALERTS_PREFIX: &str = "ward/v1/alerts/";
/// Filter of every alerts topic (one level; see the module documentation).
pub const ALERTS_FILTER: &str = "ward/v1/alerts/+";
/// Alerts topic level of alerts that concern no site (assets, contracts).
pub const GLOBAL_SITE: &str = "_global";
/// Longest alerts site level after escaping, in bytes; a longer site gets no topic.
pub const MAX_ALERTS_LEVEL_BYTES: usize = 1024;

/// What an agent topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `…/devices`: observations.
    Devices,
    /// `…/status`: the agent's retained status.
    Status,
}

impl Kind {
    /// The last topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Devices => "devices",
            Kind::Status => "status",
        }
    }

    fn parse(level: &str) -> Option<Kind> {
        match level {
            "devices" => Some(Kind::Devices),
            "status" => Some(Kind::Status),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value cannot be one topic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Over [`MAX_LEVEL_BYTES`].
    #[error("longer than 256 bytes")]
    TooLong,
    /// A level separator, a wildcard or a control character.
    #[error(
        "contains {0:?}; `/`, `+`, `#` and control characters are not allowed in a topic level"
    )]
    Forbidden(char),
}

/// Checks that `value` can be a site or agent id level: 1 to [`MAX_LEVEL_BYTES`] bytes, no
/// `/`, `+`, `#` or control character.
pub fn check_level(value: &str) -> Result<(), LevelError> {
    if value.is_empty() {
        return Err(LevelError::Empty);
    }
    if value.len() > MAX_LEVEL_BYTES {
        return Err(LevelError::TooLong);
    }
    match value
        .chars()
        .find(|c| matches!(c, '/' | '+' | '#') || c.is_control())
    {
        Some(c) => Err(LevelError::Forbidden(c)),
        None => Ok(()),
    }
}

/// Why a topic is not a ward topic. Fixed texts: the topic itself is never repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Over [`MAX_TOPIC_BYTES`].
    #[error("topic longer than 65535 bytes")]
    TooLong,
    /// Not UTF-8 (MQTT topics are UTF-8).
    #[error("topic is not UTF-8")]
    NotUtf8,
    /// Not under `ward/v1/`, or not the expected number of levels.
    #[error("not a ward/v1 topic of the expected shape")]
    Shape,
    /// The last level of an agent topic is neither `devices` nor `status`.
    #[error("last level is neither devices nor status")]
    Kind,
    /// The site level is unusable.
    #[error("site level {0}")]
    Site(LevelError),
    /// The agent id level is unusable.
    #[error("agent id level {0}")]
    AgentId(LevelError),
    /// The alerts site level is empty, over [`MAX_ALERTS_LEVEL_BYTES`], or holds a character
    /// its escaping would have replaced or a malformed `%XX`.
    #[error("alerts site level is empty, too long or not escaped")]
    AlertsLevel,
}

/// `ward/v1/<site>/<agent-id>/devices|status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentTopic<'a> {
    /// The site level.
    pub site: &'a str,
    /// The agent id level.
    pub agent_id: &'a str,
    /// Devices or status.
    pub kind: Kind,
}

impl<'a> AgentTopic<'a> {
    /// A topic from its parts, checked as [`parse`](AgentTopic::parse) would check it.
    pub fn new(site: &'a str, agent_id: &'a str, kind: Kind) -> Result<Self, TopicError> {
        check_level(site).map_err(TopicError::Site)?;
        check_level(agent_id).map_err(TopicError::AgentId)?;
        Ok(AgentTopic {
            site,
            agent_id,
            kind,
        })
    }

    /// Parses an agent topic: exactly five levels, `ward/v1/<site>/<agent-id>/<kind>`, each
    /// id a valid level ([`check_level`]). A site named `alerts` is accepted here (see
    /// [`AgentTopic::in_alerts_namespace`]).
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(TopicError::TooLong);
        }
        let mut levels = topic.split('/');
        let (Some("ward"), Some("v1"), Some(site), Some(agent_id), Some(kind), None) = (
            levels.next(),
            levels.next(),
            levels.next(),
            levels.next(),
            levels.next(),
            levels.next(),
        ) else {
            return Err(TopicError::Shape);
        };
        let kind = Kind::parse(kind).ok_or(TopicError::Kind)?;
        AgentTopic::new(site, agent_id, kind)
    }

    /// [`parse`](AgentTopic::parse) for a topic as received: bytes that must be UTF-8.
    pub fn parse_bytes(topic: &'a [u8]) -> Result<Self, TopicError> {
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(TopicError::TooLong);
        }
        std::str::from_utf8(topic)
            .map_err(|_| TopicError::NotUtf8)
            .and_then(AgentTopic::parse)
    }

    /// Whether the site is [`ALERTS_LEVEL`]: `ward/v1/alerts/<agent>/<kind>` is a valid agent
    /// topic, but under the alerts namespace, which a broker may reserve.
    pub fn in_alerts_namespace(&self) -> bool {
        self.site == ALERTS_LEVEL
    }
}

impl fmt::Display for AgentTopic<'_> {
    /// The topic: `ward/v1/<site>/<agent-id>/<kind>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}/{}/{}/{}", self.site, self.agent_id, self.kind)
    }
}

/// `ward/v1/<site>/<agent-id>/devices` (unchecked: see [`AgentTopic::new`]).
pub fn devices_topic(site: &str, agent_id: &str) -> String {
    AgentTopic {
        site,
        agent_id,
        kind: Kind::Devices,
    }
    .to_string()
}

/// `ward/v1/<site>/<agent-id>/status` (unchecked: see [`AgentTopic::new`]).
pub fn status_topic(site: &str, agent_id: &str) -> String {
    AgentTopic {
        site,
        agent_id,
        kind: Kind::Status,
    }
    .to_string()
}

/// Whether a character of a site is percent-escaped in its alerts level: what would make it
/// several levels, a wildcard, an escape, a control character, or a leading `$` (reserved for
/// broker topics such as `$SYS`).
fn escaped(first: bool, c: char) -> bool {
    matches!(c, '/' | '+' | '#' | '%') || c.is_control() || (first && c == '$')
}

/// The topic of a site's alerts, `ward/v1/alerts/<site>` (`None`: [`GLOBAL_SITE`]).
///
/// Sites come from agents, which may not put `/ + #` in them, but alerts are built from stored
/// evidence: `/ + # %`, control characters and a leading `$` are percent-escaped (UTF-8
/// bytes, `%XX` upper case), and a site literally named `_global` becomes `%5Fglobal`.
/// `None` if the site is empty or its level would exceed [`MAX_ALERTS_LEVEL_BYTES`].
pub fn alerts_topic(site: Option<&str>) -> Option<String> {
    let Some(site) = site else {
        return Some(format!("{ALERTS_PREFIX}{GLOBAL_SITE}"));
    };
    if site.is_empty() {
        return None;
    }
    let mut level = String::with_capacity(site.len());
    for (i, c) in site.chars().enumerate() {
        if escaped(i == 0, c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                level.push_str(&format!("%{b:02X}"));
            }
        } else {
            level.push(c);
        }
        if level.len() > MAX_ALERTS_LEVEL_BYTES {
            return None;
        }
    }
    if level == GLOBAL_SITE {
        level = "%5Fglobal".into();
    }
    Some(format!("{ALERTS_PREFIX}{level}"))
}

/// `ward/v1/alerts/<site>`, parsed: the inverse of [`alerts_topic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsTopic {
    /// The site, unescaped; `None` for [`GLOBAL_SITE`].
    pub site: Option<String>,
}

impl AlertsTopic {
    /// Parses an alerts topic: exactly `ward/v1/alerts/<level>`, the level exactly as
    /// [`alerts_topic`] writes it (every `%` starts a `%XX` escape, the unescaped site is
    /// UTF-8, and escaping it again gives the same level).
    pub fn parse(topic: &str) -> Result<AlertsTopic, TopicError> {
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(TopicError::TooLong);
        }
        let Some(level) = topic.strip_prefix(ALERTS_PREFIX) else {
            return Err(TopicError::Shape);
        };
        if level.contains('/') {
            return Err(TopicError::Shape);
        }
        if level.is_empty() || level.len() > MAX_ALERTS_LEVEL_BYTES {
            return Err(TopicError::AlertsLevel);
        }
        if level == GLOBAL_SITE {
            return Ok(AlertsTopic { site: None });
        }
        let mut site = Vec::with_capacity(level.len());
        let mut bytes = level.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(bytes.next()), hex(bytes.next())) else {
                    return Err(TopicError::AlertsLevel);
                };
                // Both digits are below 16.
                site.push((hi * 16 + lo) as u8);
            } else {
                site.push(b);
            }
        }
        let site = String::from_utf8(site).map_err(|_| TopicError::NotUtf8)?;
        // Only the canonical spelling: a character left unescaped that would have been
        // escaped (a wildcard, a control character, a leading `$`), an escape of one that
        // would not, or lower-case hex is not a topic ward writes.
        if alerts_topic(Some(&site)).as_deref() != Some(topic) {
            return Err(TopicError::AlertsLevel);
        }
        Ok(AlertsTopic { site: Some(site) })
    }
}

/// Whether a subscription filter stays inside the alerts namespace: `ward/v1/alerts/` followed
/// by at least one character, so no wildcard above it (`ward/v1/alerts/#`,
/// `ward/v1/alerts/north`). Whether the filter is valid MQTT is the caller's check.
pub fn is_alerts_filter(filter: &str) -> bool {
    filter
        .strip_prefix(ALERTS_PREFIX)
        .is_some_and(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn agent_topics_build_and_parse() {
        assert_eq!(
            devices_topic("site-1", "agent-1"),
            "ward/v1/site-1/agent-1/devices"
        );
        assert_eq!(
            status_topic("site-1", "agent-1"),
            "ward/v1/site-1/agent-1/status"
        );
        let t = AgentTopic::parse("ward/v1/north/agentA/status").unwrap();
        assert_eq!(
            t,
            AgentTopic {
                site: "north",
                agent_id: "agentA",
                kind: Kind::Status
            }
        );
        assert!(!t.in_alerts_namespace());
        assert_eq!(t.to_string(), "ward/v1/north/agentA/status");
        let a = AgentTopic::parse("ward/v1/alerts/agentA/devices").unwrap();
        assert!(a.in_alerts_namespace());
        // Levels may hold what an MQTT level may hold, spaces and non-ASCII included: the
        // stricter id rules are the broker's and the ingest's.
        assert!(AgentTopic::parse("ward/v1/no rth/agentÄ/devices").is_ok());
        for f in AGENT_FILTERS {
            assert!(rumqttc::valid_filter(f), "{f}");
        }
    }

    #[test]
    fn hostile_agent_topics_are_refused() {
        use TopicError::*;
        let long_level = format!("ward/v1/{}/a/devices", "s".repeat(MAX_LEVEL_BYTES + 1));
        let huge = format!("ward/v1/{}/a/devices", "s".repeat(MAX_TOPIC_BYTES));
        let cases: Vec<(&str, TopicError)> = vec![
            ("", Shape),
            ("ward", Shape),
            ("ward/v1", Shape),
            ("ward/v1/s/a", Shape),
            ("ward/v2/s/a/devices", Shape),
            ("Ward/v1/s/a/devices", Shape),
            ("/ward/v1/s/a/devices", Shape),
            ("ward/v1/s/a/devices/", Shape),
            ("ward/v1/s/a/devices/x", Shape),
            ("ward/v1/s/a/b/devices", Shape),
            ("ward/v1/s/a/other", Kind),
            ("ward/v1/s/a/Devices", Kind),
            ("ward/v1/s/a/", Kind),
            ("ward/v1//a/devices", Site(LevelError::Empty)),
            ("ward/v1/s//devices", AgentId(LevelError::Empty)),
            ("ward/v1/+/a/devices", Site(LevelError::Forbidden('+'))),
            ("ward/v1/s/#/devices", AgentId(LevelError::Forbidden('#'))),
            ("ward/v1/s+x/a/devices", Site(LevelError::Forbidden('+'))),
            (
                "ward/v1/s/a\0/devices",
                AgentId(LevelError::Forbidden('\0')),
            ),
            ("ward/v1/s\n/a/devices", Site(LevelError::Forbidden('\n'))),
            (
                "ward/v1/s\u{1b}[2J/a/status",
                Site(LevelError::Forbidden('\u{1b}')),
            ),
            (
                "ward/v1/s\u{85}/a/status",
                Site(LevelError::Forbidden('\u{85}')),
            ),
            (&long_level, Site(LevelError::TooLong)),
            (&huge, TooLong),
        ];
        for (topic, want) in cases {
            let got = AgentTopic::parse(topic).unwrap_err();
            assert_eq!(got, want, "{topic:?}");
            // The error never repeats the topic.
            let text = got.to_string();
            assert!(!text.contains("ward/v1/"), "{text}");
        }
        assert_eq!(
            AgentTopic::parse_bytes(b"ward/v1/s\xff/a/devices"),
            Err(NotUtf8)
        );
        assert_eq!(AgentTopic::parse_bytes(huge.as_bytes()), Err(TooLong));
        assert!(AgentTopic::parse_bytes(b"ward/v1/s/a/devices").is_ok());
        assert_eq!(
            AgentTopic::new("s", "a/b", super::Kind::Devices),
            Err(AgentId(LevelError::Forbidden('/')))
        );
    }

    #[test]
    fn levels_are_checked() {
        assert_eq!(check_level("main-campus"), Ok(()));
        assert_eq!(check_level(""), Err(LevelError::Empty));
        assert_eq!(check_level(&"x".repeat(257)), Err(LevelError::TooLong));
        assert_eq!(check_level(&"x".repeat(256)), Ok(()));
        assert_eq!(check_level("a/b"), Err(LevelError::Forbidden('/')));
        assert!(LevelError::Forbidden('+').to_string().contains("'+'"));
    }

    #[test]
    fn sites_become_escaped_alerts_levels() {
        assert_eq!(
            alerts_topic(None).as_deref(),
            Some("ward/v1/alerts/_global")
        );
        assert_eq!(
            alerts_topic(Some("north")).as_deref(),
            Some("ward/v1/alerts/north")
        );
        assert_eq!(
            alerts_topic(Some("a/b+c#d%e")).as_deref(),
            Some("ward/v1/alerts/a%2Fb%2Bc%23d%25e")
        );
        assert_eq!(
            alerts_topic(Some("$SYS")).as_deref(),
            Some("ward/v1/alerts/%24SYS")
        );
        assert_eq!(
            alerts_topic(Some("a\nb")).as_deref(),
            Some("ward/v1/alerts/a%0Ab")
        );
        assert_eq!(
            alerts_topic(Some("_global")).as_deref(),
            Some("ward/v1/alerts/%5Fglobal")
        );
        assert_eq!(alerts_topic(Some("")), None);
        assert_eq!(alerts_topic(Some(&"x".repeat(2000))), None);
        assert_eq!(alerts_topic(Some(&"/".repeat(400))), None);
        for s in ["a/b", "+", "#", "$x", "ü/ö"] {
            let t = alerts_topic(Some(s)).unwrap();
            assert!(rumqttc::valid_topic(&t), "{t}");
            assert_eq!(t.matches('/').count(), 3, "{t}");
        }
    }

    #[test]
    fn alerts_topics_parse_back() {
        for site in [
            None,
            Some("north"),
            Some("_global"),
            Some("a/b+c#d%e"),
            Some("$SYS"),
        ] {
            let t = alerts_topic(site).unwrap();
            assert_eq!(AlertsTopic::parse(&t).unwrap().site.as_deref(), site, "{t}");
        }
        for bad in [
            "ward/v1/alerts/",
            "ward/v1/alerts/a/b",
            "ward/v1/alerts/+",
            "ward/v1/alerts/#",
            "ward/v1/alerts/$SYS",
            "ward/v1/alerts/a%2",
            "ward/v1/alerts/a%zz",
            "ward/v1/alerts/a%2fb",
            "ward/v1/alerts/%41",
            "ward/v1/alerts/%5Fother",
            "ward/v1/alerts/a\nb",
            "ward/v1/alerts/a\u{85}b",
            "ward/v1/north/a/devices",
        ] {
            assert!(AlertsTopic::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            AlertsTopic::parse("ward/v1/alerts/%FF"),
            Err(TopicError::NotUtf8)
        );
    }

    #[test]
    fn alerts_filters_stay_in_the_namespace() {
        // (filter, inside the alerts namespace)
        let cases = [
            (ALERTS_FILTER, true),
            ("ward/v1/alerts/#", true),
            ("ward/v1/alerts/north", true),
            ("ward/v1/alerts/", false),
            ("ward/v1/alerts", false),
            ("ward/v1/+/+/status", false),
            ("ward/+/alerts/#", false),
            ("+/v1/alerts/#", false),
            ("#", false),
        ];
        for (filter, inside) in cases {
            assert_eq!(is_alerts_filter(filter), inside, "{filter}");
        }
        assert!(is_alerts_filter(ALERTS_FILTER));
    }

    proptest! {
        /// Any valid parts make a topic that parses back to them.
        #[test]
        fn agent_topics_round_trip(
            site in "[^/+#\\p{Cc}]{1,40}",
            agent in "[^/+#\\p{Cc}]{1,40}",
            status in any::<bool>(),
        ) {
            let kind = if status { Kind::Status } else { Kind::Devices };
            let t = AgentTopic::new(&site, &agent, kind).unwrap();
            let text = t.to_string();
            prop_assert_eq!(AgentTopic::parse(&text).unwrap(), t);
        }

        /// Any text parses or is refused without panicking; what parses prints back as given.
        #[test]
        fn any_topic_parses_or_is_refused(topic in "(ward/v1/)?\\PC{0,30}(/devices|/status)?") {
            if let Ok(t) = AgentTopic::parse(&topic) {
                prop_assert_eq!(t.to_string(), topic.clone());
            }
            if let Ok(a) = AlertsTopic::parse(&topic) {
                prop_assert_eq!(alerts_topic(a.site.as_deref()), Some(topic));
            }
        }

        /// Any site (stored evidence is arbitrary text) gets a one-level topic that parses
        /// back to it, or none.
        #[test]
        fn alerts_topics_round_trip(site in "\\PC{0,40}|[\\p{Cc}/+#%$_a-z]{0,12}") {
            match alerts_topic(Some(&site)) {
                Some(t) => {
                    prop_assert!(rumqttc::valid_topic(&t));
                    prop_assert_eq!(t.matches('/').count(), 3);
                    prop_assert_eq!(AlertsTopic::parse(&t).unwrap().site, Some(site));
                }
                None => prop_assert!(site.is_empty()),
            }
        }
    }
    #[test]
    fn site_filters_are_checked_levels() {
        assert_eq!(
            site_filters("north").unwrap(),
            [
                "ward/v1/north/+/devices".to_string(),
                "ward/v1/north/+/status".to_string()
            ]
        );
        assert_eq!(site_filters(""), Err(LevelError::Empty));
        assert_eq!(site_filters("a/b"), Err(LevelError::Forbidden('/')));
        assert_eq!(site_filters("+"), Err(LevelError::Forbidden('+')));
        // Each filter is exactly what the agent of that site publishes to.
        let [d, st] = site_filters("north").unwrap();
        assert_eq!(
            d.replace('+', "a1"),
            AgentTopic::new("north", "a1", Kind::Devices)
                .unwrap()
                .to_string()
        );
        assert_eq!(
            st.replace('+', "a1"),
            AgentTopic::new("north", "a1", Kind::Status)
                .unwrap()
                .to_string()
        );
    }
}
