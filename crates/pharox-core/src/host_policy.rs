//! Which proxy hosts a deployment accepts: [`ProxyHostPolicy`].
//!
//! A proxy record names a host that the health checker connects to, and that
//! every scraper leasing the proxy connects to. Once remote callers can write
//! proxy records (`pharox serve`), a host such as `127.0.0.1` or
//! `169.254.169.254` would make the checker reach services on its own machine
//! or the cloud metadata endpoint (server-side request forgery). The policy
//! refuses, unless its allow-list says otherwise:
//!
//! | kind | IPv4 | IPv6 |
//! |---|---|---|
//! | unspecified, "this network" | `0.0.0.0/8` | `::/128` |
//! | loopback | `127.0.0.0/8` | `::1/128` |
//! | link-local (cloud metadata `169.254.169.254`) | `169.254.0.0/16` | `fe80::/10` |
//! | multicast | `224.0.0.0/4` | `ff00::/8` |
//! | broadcast | `255.255.255.255/32` | |
//! | cloud metadata outside those ranges | `100.100.100.200/32` (Alibaba) | `fd00:ec2::254/128` (AWS) |
//! | loopback names | `localhost`, `*.localhost`, [`LOOPBACK_ALIASES`] | |
//!
//! An IPv6 address that carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is judged by the
//! IPv4 address it carries, so `::ffff:127.0.0.1` is loopback.
//!
//! **Private ranges are accepted** (`10.0.0.0/8`, `172.16.0.0/12`,
//! `192.168.0.0/16`, `100.64.0.0/10`, `fc00::/7`): that is where the proxies of
//! a corporate deployment live, and refusing them would make the allow-list
//! mandatory for the common case. A deployment whose private network holds
//! services a caller must not reach keeps API keys to trusted callers.
//!
//! Hosts are read the way connecting code reads them: by the WHATWG URL host
//! parser that reqwest applies to a proxy URL (percent-decoding, IDNA mapping,
//! IPv4 numbers in decimal, octal or hex, with one to four parts), which also
//! accepts every numeric form `inet_aton` (the system resolver) does. So
//! `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, `%31%32%37.0.0.1` and
//! fullwidth `１２７.０.０.１` are all 127.0.0.1, and `LOCALHOST.` is
//! `localhost`.
//!
//! A host name is only refused as written when it is a loopback name; what a
//! name resolves to is checked where it is resolved (the health checker, with
//! [`ProxyHostPolicy::check_resolved`]). A name on the allow-list may be
//! written, but the addresses it resolves to still have to pass: allowing
//! `localhost` for the checker takes `localhost,127.0.0.0/8,::1`.
//!
//! ```
//! use pharox_core::host_policy::{ProxyHostPolicy, RefusedKind};
//!
//! let strict = ProxyHostPolicy::default();
//! let refused = strict.check_host("127.1").unwrap_err();
//! assert_eq!(refused.kind(), RefusedKind::Loopback);
//! assert!(strict.check_host("10.0.0.7").is_ok());
//!
//! let lab: ProxyHostPolicy = "127.0.0.0/8,::1,localhost".parse().unwrap();
//! assert!(lab.check_host("localhost").is_ok());
//! assert!(lab.check_host("169.254.169.254").is_err());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::{Error, Result};

/// The command-line flag that sets the allow-list; refusals name it.
pub const ALLOW_FLAG: &str = "--allow-proxy-hosts";

/// The environment variable that sets the allow-list.
pub const ALLOW_ENV: &str = "PHAROX_ALLOW_PROXY_HOSTS";

/// Names that common `/etc/hosts` files map to loopback (Debian, Red Hat),
/// refused like `localhost`.
pub const LOOPBACK_ALIASES: [&str; 7] = [
    "localhost.localdomain",
    "localhost4",
    "localhost4.localdomain4",
    "localhost6",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
];

/// Why a host is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusedKind {
    /// `0.0.0.0/8` or `::`: connecting to 0.0.0.0 reaches this machine on Linux.
    Unspecified,
    /// `127.0.0.0/8` or `::1`: this machine.
    Loopback,
    /// `169.254.0.0/16` or `fe80::/10`, where cloud metadata services answer.
    LinkLocal,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// A cloud metadata address outside the ranges above.
    CloudMetadata,
    /// `localhost`, `*.localhost` or a [`LOOPBACK_ALIASES`] name.
    LoopbackName,
}

impl RefusedKind {
    fn one(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified (\"this network\") address",
            Self::Loopback => "a loopback address",
            Self::LinkLocal => "a link-local address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::CloudMetadata => "a cloud metadata address",
            Self::LoopbackName => "a loopback name",
        }
    }

    fn many(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified addresses",
            Self::Loopback => "loopback addresses",
            Self::LinkLocal => "link-local addresses",
            Self::Multicast => "multicast addresses",
            Self::Broadcast => "broadcast addresses",
            Self::CloudMetadata => "cloud metadata addresses",
            Self::LoopbackName => "loopback names",
        }
    }
}

/// A range of IPv4 or IPv6 addresses in CIDR notation (`10.0.0.0/8`,
/// `fe80::/10`); a single address is a range of one.
//
// Hand-written rather than `ipnet`: containment is two lines of bit
// arithmetic, the refused ranges below are `const` data, and the parser
// can say which part of an entry is wrong (host bits, prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range of `network`/`prefix`.
    ///
    /// # Errors
    /// When the prefix is longer than the address (32 or 128 bits), or
    /// `network` has bits set past the prefix (`10.0.0.1/8`).
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self> {
        let (bits, width) = bits(network);
        if prefix > width {
            return Err(invalid(format!(
                "`{network}/{prefix}`: the prefix length is at most {width} for {}",
                if network.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
        let range = Self { network, prefix };
        if bits & range.host_mask() != 0 {
            let first = from_bits(bits & !range.host_mask(), network.is_ipv4());
            return Err(invalid(format!(
                "`{network}/{prefix}` has bits set past the prefix (did you mean {first}/{prefix}?)"
            )));
        }
        Ok(range)
    }

    /// The single address `ip`.
    pub fn single(ip: IpAddr) -> Self {
        Self {
            network: ip,
            prefix: bits(ip).1,
        }
    }

    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    fn host_mask(&self) -> u128 {
        let width = bits(self.network).1;
        match width - self.prefix {
            128 => u128::MAX,
            n => (1u128 << n) - 1,
        }
    }

    /// Whether `ip` is in the range (never across IPv4 and IPv6).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network.is_ipv4() == ip.is_ipv4()
            && bits(ip).0 & !self.host_mask() == bits(self.network).0
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        self.network
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        from_bits(
            bits(self.network).0 | self.host_mask(),
            self.network.is_ipv4(),
        )
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == bits(self.network).1 {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        // Only ever called with bits of an IPv4 range: the low 32 bits.
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

/// The ranges refused by default, in the order they are reported.
const REFUSED: [(IpRange, RefusedKind); 11] = [
    (IpRange::v4(0, 0, 0, 0, 8), RefusedKind::Unspecified),
    (IpRange::v4(127, 0, 0, 0, 8), RefusedKind::Loopback),
    (IpRange::v4(169, 254, 0, 0, 16), RefusedKind::LinkLocal),
    (IpRange::v4(224, 0, 0, 0, 4), RefusedKind::Multicast),
    (IpRange::v4(255, 255, 255, 255, 32), RefusedKind::Broadcast),
    (
        IpRange::v4(100, 100, 100, 200, 32),
        RefusedKind::CloudMetadata,
    ),
    (IpRange::v6([0; 8], 128), RefusedKind::Unspecified),
    (
        IpRange::v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        RefusedKind::Loopback,
    ),
    (
        IpRange::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        RefusedKind::LinkLocal,
    ),
    (
        IpRange::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        RefusedKind::Multicast,
    ),
    (
        IpRange::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        RefusedKind::CloudMetadata,
    ),
];

/// The IPv4 address an IPv6 one carries, and how it carries it.
fn embedded_v4(a: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let low = Ipv4Addr::from(u128::from(a) as u32);
    match a.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((low, "IPv4-mapped")),
        // `::` and `::1` are refused as themselves before this is asked.
        [0, 0, 0, 0, 0, 0, _, _] => Some((low, "IPv4-compatible")),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((low, "NAT64")),
        _ => None,
    }
}

/// What a proxy's host names, read as connecting code reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyHost {
    /// An IP address, however it was spelled.
    Ip(IpAddr),
    /// A name to resolve: lowercase, IDNA-mapped, without a trailing dot.
    Name(String),
}

impl ProxyHost {
    /// Reads `host` (a proxy record's host): an IPv6 address with or without
    /// brackets or zone (`fe80::1%eth0`), any IPv4 spelling the WHATWG URL
    /// parser accepts, or a name.
    pub fn parse(host: &str) -> Self {
        Self::read(host).0
    }

    /// The host and, for a name, the raw spelling too (lowercase, no
    /// trailing dot), which other clients may resolve instead.
    fn read(host: &str) -> (Self, Option<String>) {
        if host.contains(':') {
            let inner = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            // A zone (`%eth0`, `%25eth0` in a URL) picks an interface, not an address.
            let address = inner.split('%').next().unwrap_or(inner);
            if let Ok(ip) = address.parse::<Ipv6Addr>() {
                return (Self::Ip(IpAddr::V6(ip)), None);
            }
        }
        let raw = trim_name(&host.to_ascii_lowercase()).to_owned();
        match url::Host::parse(host) {
            Ok(url::Host::Ipv4(ip)) => (Self::Ip(IpAddr::V4(ip)), None),
            Ok(url::Host::Ipv6(ip)) => (Self::Ip(IpAddr::V6(ip)), None),
            Ok(url::Host::Domain(d)) => {
                let name = trim_name(&d).to_owned();
                let raw = (raw != name).then_some(raw);
                (Self::Name(name), raw)
            }
            // Not a URL host: reqwest cannot use it, a resolver might.
            Err(_) => (Self::Name(raw), None),
        }
    }
}

fn trim_name(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || LOOPBACK_ALIASES.contains(&name)
}

/// How the refused address was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Name,
    Written(IpAddr),
    Resolved(IpAddr),
}

/// A host the policy refuses, and why. Its `Display` is the reason an API
/// answer or a failed check gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRefusal {
    host: String,
    seen: Seen,
    kind: RefusedKind,
    range: String,
}

impl HostRefusal {
    /// Why it is refused.
    pub fn kind(&self) -> RefusedKind {
        self.kind
    }

    /// The host as written.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The refused address, when the host is or resolved to one.
    pub fn address(&self) -> Option<IpAddr> {
        match self.seen {
            Seen::Name => None,
            Seen::Written(ip) | Seen::Resolved(ip) => Some(ip),
        }
    }
}

impl fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (host, kind, range) = (&self.host, self.kind.one(), &self.range);
        match self.seen {
            Seen::Name => write!(f, "`{host}` is {kind} ({range})")?,
            Seen::Written(ip) if *host == ip.to_string() || *host == format!("[{ip}]") => {
                write!(f, "`{host}` is {kind} ({range})")?;
            }
            Seen::Written(ip) => write!(f, "`{host}` reads as {ip}, {kind} ({range})")?,
            Seen::Resolved(ip) => write!(f, "`{host}` resolves to {ip}, {kind} ({range})")?,
        }
        write!(
            f,
            ": {} are refused as proxy hosts; allow them with {ALLOW_FLAG}",
            self.kind.many()
        )
    }
}

impl std::error::Error for HostRefusal {}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AllowEntry {
    /// Addresses, accepted although refused by default.
    Range(IpRange),
    /// A loopback name (normalised), accepted as written.
    Name(String),
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Range(r) => r.fmt(f),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// The proxy hosts a deployment refuses: loopback, link-local, unspecified,
/// multicast and broadcast addresses, cloud metadata addresses and loopback
/// names (see the [module docs](self)), less an allow-list.
///
/// `Default` refuses all of them. The allow-list parses from a
/// comma-separated string (`127.0.0.0/8,::1,localhost`); `Display` writes
/// it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyHostPolicy {
    allow: Vec<AllowEntry>,
}

impl ProxyHostPolicy {
    /// The policy that refuses every default kind and allows nothing else.
    pub fn new() -> Self {
        Self::default()
    }

    /// The default refusals less the entries of `list`: comma-separated CIDR
    /// ranges (`127.0.0.0/8`, `fe80::/10`), single addresses (`::1`) and
    /// exact loopback names (`localhost`, `proxy.localhost`). Blank entries
    /// are skipped.
    ///
    /// # Errors
    /// `InvalidInput` (field `allow_proxy_hosts`) naming the first bad entry:
    /// an address not in canonical form, a prefix too long, bits past the
    /// prefix, a wildcard, or a name that is not refused in the first place
    /// (its addresses are what the checker judges: list those).
    pub fn with_allow_list(list: &str) -> Result<Self> {
        let allow = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_entry)
            .collect::<Result<_>>()?;
        Ok(Self { allow })
    }

    /// The allow-list, in the order given.
    pub fn allow_list(&self) -> &[AllowEntry] {
        &self.allow
    }

    /// Checks a proxy's host as written and returns what it names.
    ///
    /// # Errors
    /// When the host is a refused address (in any spelling) or a loopback
    /// name, and not on the allow-list.
    pub fn check_host(&self, host: &str) -> Result<ProxyHost, HostRefusal> {
        let (parsed, raw) = ProxyHost::read(host);
        match &parsed {
            ProxyHost::Ip(ip) => self.judge(host, *ip, Seen::Written(*ip))?,
            ProxyHost::Name(name) => {
                for n in std::iter::once(name).chain(raw.as_ref()) {
                    if is_loopback_name(n) && !self.allows_name(n) {
                        return Err(HostRefusal {
                            host: host.to_owned(),
                            seen: Seen::Name,
                            kind: RefusedKind::LoopbackName,
                            range: "localhost, *.localhost and the loopback aliases of /etc/hosts"
                                .into(),
                        });
                    }
                }
            }
        }
        Ok(parsed)
    }

    /// Checks an address to connect to.
    ///
    /// # Errors
    /// When `ip` is refused and not on the allow-list.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), HostRefusal> {
        self.judge(&ip.to_string(), ip, Seen::Written(ip))
    }

    /// Checks `ip`, an address the proxy host `host` resolved to; the refusal
    /// says so.
    ///
    /// # Errors
    /// When `ip` is refused and not on the allow-list.
    pub fn check_resolved(&self, host: &str, ip: IpAddr) -> Result<(), HostRefusal> {
        self.judge(host, ip, Seen::Resolved(ip))
    }

    fn judge(&self, host: &str, ip: IpAddr, seen: Seen) -> Result<(), HostRefusal> {
        let carried = match ip {
            IpAddr::V6(a) => embedded_v4(a),
            IpAddr::V4(_) => None,
        };
        let hit = REFUSED
            .iter()
            .find(|(r, _)| r.contains(ip))
            .map(|(r, kind)| (*kind, r.to_string()))
            .or_else(|| {
                let (v4, how) = carried?;
                REFUSED
                    .iter()
                    .find(|(r, _)| r.contains(IpAddr::V4(v4)))
                    .map(|(r, kind)| (*kind, format!("{r}, {how}")))
            });
        let Some((kind, range)) = hit else {
            return Ok(());
        };
        let allowed = self.allow.iter().any(|e| match e {
            AllowEntry::Range(r) => {
                r.contains(ip) || carried.is_some_and(|(v4, _)| r.contains(IpAddr::V4(v4)))
            }
            AllowEntry::Name(_) => false,
        });
        if allowed {
            return Ok(());
        }
        Err(HostRefusal {
            host: host.to_owned(),
            seen,
            kind,
            range,
        })
    }

    fn allows_name(&self, name: &str) -> bool {
        self.allow
            .iter()
            .any(|e| matches!(e, AllowEntry::Name(n) if n == name))
    }
}

impl FromStr for ProxyHostPolicy {
    type Err = Error;

    fn from_str(list: &str) -> Result<Self> {
        Self::with_allow_list(list)
    }
}

impl fmt::Display for ProxyHostPolicy {
    /// The allow-list as it parses back (empty for the default policy).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.allow.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

fn invalid(reason: String) -> Error {
    Error::invalid("allow_proxy_hosts", reason)
}

fn parse_entry(entry: &str) -> Result<AllowEntry> {
    if let Some((address, prefix)) = entry.split_once('/') {
        let network: IpAddr = address.parse().map_err(|_| {
            invalid(format!(
                "`{entry}`: `{address}` is not an IP address (write IPv4 as four decimal \
                 numbers, IPv6 without brackets)"
            ))
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|_| prefix.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                invalid(format!(
                    "`{entry}`: `{prefix}` is not a prefix length (0 to 32, or 128 for IPv6)"
                ))
            })?;
        return IpRange::new(network, prefix).map(AllowEntry::Range);
    }
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(AllowEntry::Range(IpRange::single(ip)));
    }
    if entry.contains('*') {
        return Err(invalid(format!(
            "`{entry}`: wildcards are not supported; list exact names or CIDR ranges"
        )));
    }
    match ProxyHost::parse(entry) {
        ProxyHost::Ip(ip) => Err(invalid(format!(
            "`{entry}` reads as the address {ip}; write it as {ip}"
        ))),
        ProxyHost::Name(name) if is_loopback_name(&name) => Ok(AllowEntry::Name(name)),
        ProxyHost::Name(name) => Err(invalid(format!(
            "`{entry}` is not an address, a CIDR range or a loopback name: other names are \
             never refused as written, and the checker judges the addresses `{name}` \
             resolves to, so list those"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn kind(policy: &ProxyHostPolicy, host: &str) -> Option<RefusedKind> {
        policy.check_host(host).err().map(|r| r.kind())
    }

    fn next(a: IpAddr, up: bool) -> Option<IpAddr> {
        let (b, _) = bits(a);
        let moved = if up {
            b.checked_add(1)
        } else {
            b.checked_sub(1)
        }?;
        (a.is_ipv6() || moved <= u128::from(u32::MAX)).then(|| from_bits(moved, a.is_ipv4()))
    }

    #[test]
    fn every_refused_range_is_refused_from_its_first_to_its_last_address() {
        let policy = ProxyHostPolicy::default();
        for (range, want) in REFUSED {
            // The table is canonical (no bits past a prefix).
            assert_eq!(
                IpRange::new(range.network, range.prefix).unwrap(),
                range,
                "{range}"
            );
            for a in [range.first(), range.last()] {
                let refusal = policy.check_ip(a).unwrap_err();
                assert_eq!(refusal.kind(), want, "{a} in {range}");
                assert!(
                    refusal.to_string().contains(&range.to_string()),
                    "{refusal}"
                );
                assert_eq!(kind(&policy, &a.to_string()), Some(want), "{a} written");
            }
            // Just outside: accepted unless another refused range starts there.
            for (a, up) in [(range.first(), false), (range.last(), true)] {
                let Some(out) = next(a, up) else { continue };
                // Neighbours that carry an IPv4 address (`::2`) have their own test.
                if let IpAddr::V6(v6) = out
                    && embedded_v4(v6).is_some()
                {
                    continue;
                }
                let elsewhere = REFUSED.iter().any(|(r, _)| r.contains(out));
                assert_eq!(
                    policy.check_ip(out).is_ok(),
                    !elsewhere,
                    "{out} beside {range}"
                );
            }
        }
    }

    #[test]
    fn named_addresses_are_refused_and_private_ranges_are_not() {
        let policy = ProxyHostPolicy::default();
        for (host, want) in [
            ("127.0.0.1", RefusedKind::Loopback),
            ("169.254.169.254", RefusedKind::LinkLocal),
            ("::1", RefusedKind::Loopback),
            ("[::1]", RefusedKind::Loopback),
            ("fe80::1", RefusedKind::LinkLocal),
            ("fe80::1%eth0", RefusedKind::LinkLocal),
            ("[fe80::1%25eth0]", RefusedKind::LinkLocal),
            ("febf:ffff::1", RefusedKind::LinkLocal),
            ("0.0.0.0", RefusedKind::Unspecified),
            ("0.1.2.3", RefusedKind::Unspecified),
            ("::", RefusedKind::Unspecified),
            ("224.0.0.1", RefusedKind::Multicast),
            ("239.255.255.250", RefusedKind::Multicast),
            ("ff02::1", RefusedKind::Multicast),
            ("255.255.255.255", RefusedKind::Broadcast),
            ("fd00:ec2::254", RefusedKind::CloudMetadata),
            ("100.100.100.200", RefusedKind::CloudMetadata),
        ] {
            assert_eq!(kind(&policy, host), Some(want), "{host}");
        }
        for host in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.201",
            "fc00::1",
            "fd00:ec2::253",
            "fdff::1",
            "203.0.113.7",
            "2001:db8::1",
            "fec0::1",
            "128.0.0.1",
            "126.255.255.255",
            "h",
            "proxy.example",
            "localhost.example",
            "mylocalhost",
            "",
        ] {
            assert!(policy.check_host(host).is_ok(), "{host} refused");
        }
    }

    #[test]
    fn ipv6_forms_carrying_a_refused_ipv4_address_are_refused() {
        let policy = ProxyHostPolicy::default();
        for (host, want, how) in [
            ("::ffff:127.0.0.1", RefusedKind::Loopback, "IPv4-mapped"),
            ("::ffff:7f00:1", RefusedKind::Loopback, "IPv4-mapped"),
            (
                "[::ffff:169.254.169.254]",
                RefusedKind::LinkLocal,
                "IPv4-mapped",
            ),
            ("::ffff:0.0.0.0", RefusedKind::Unspecified, "IPv4-mapped"),
            ("::ffff:224.0.0.1", RefusedKind::Multicast, "IPv4-mapped"),
            ("::127.0.0.1", RefusedKind::Loopback, "IPv4-compatible"),
            ("64:ff9b::127.0.0.1", RefusedKind::Loopback, "NAT64"),
            ("64:ff9b::a9fe:a9fe", RefusedKind::LinkLocal, "NAT64"),
        ] {
            let refusal = policy.check_host(host).unwrap_err();
            assert_eq!(refusal.kind(), want, "{host}");
            assert!(refusal.to_string().contains(how), "{refusal}");
        }
        for host in ["::ffff:10.0.0.1", "64:ff9b::10.0.0.1", "::ffff:203.0.113.7"] {
            assert!(policy.check_host(host).is_ok(), "{host}");
        }
    }

    #[test]
    fn odd_ipv4_spellings_read_as_the_address_they_denote() {
        let policy = ProxyHostPolicy::default();
        for host in [
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "017700000001",
            "0177.0.0.1",
            "0x7f.0.0.1",
            "0x7f.1",
            "127.1",
            "127.0.1",
            "127.0.0.1.",
            "127.000.000.001",
            "%31%32%37.0.0.1",
            "\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}",
            "127\u{3002}0\u{3002}0\u{3002}1",
        ] {
            let refusal = policy.check_host(host).unwrap_err();
            assert_eq!(refusal.kind(), RefusedKind::Loopback, "{host}");
            assert_eq!(refusal.address(), Some(ip("127.0.0.1")), "{host}");
            assert!(
                refusal.to_string().contains("reads as 127.0.0.1"),
                "{refusal}"
            );
        }
        assert_eq!(kind(&policy, "0"), Some(RefusedKind::Unspecified));
        assert_eq!(kind(&policy, "0xa9fea9fe"), Some(RefusedKind::LinkLocal));
        assert_eq!(kind(&policy, "2852039166"), Some(RefusedKind::LinkLocal));
        // Odd spellings of accepted addresses stay accepted, as the address.
        assert_eq!(
            policy.check_host("167772161").unwrap(),
            ProxyHost::Ip(ip("10.0.0.1"))
        );
        assert_eq!(
            policy.check_host("Proxy.Example.").unwrap(),
            ProxyHost::Name("proxy.example".into())
        );
    }

    #[test]
    fn loopback_names_are_refused_in_any_spelling() {
        let policy = ProxyHostPolicy::default();
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "api.localhost",
            "a.b.localhost.",
            "%6c%6f%63%61%6c%68%6f%73%74",
            "\u{24db}ocalhost",
            "\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}",
            "localhost.localdomain",
            "ip6-localhost",
            "localhost6",
        ] {
            assert_eq!(
                kind(&policy, host),
                Some(RefusedKind::LoopbackName),
                "{host}"
            );
        }
    }

    #[test]
    fn refusals_say_what_was_refused_and_how_to_allow_it() {
        let policy = ProxyHostPolicy::default();
        assert_eq!(
            policy.check_host("127.0.0.1").unwrap_err().to_string(),
            "`127.0.0.1` is a loopback address (127.0.0.0/8): loopback addresses are \
             refused as proxy hosts; allow them with --allow-proxy-hosts"
        );
        assert_eq!(
            policy
                .check_resolved("proxy.example", ip("169.254.169.254"))
                .unwrap_err()
                .to_string(),
            "`proxy.example` resolves to 169.254.169.254, a link-local address \
             (169.254.0.0/16): link-local addresses are refused as proxy hosts; allow them \
             with --allow-proxy-hosts"
        );
        let name = policy.check_host("localhost").unwrap_err();
        assert_eq!(name.address(), None);
        assert!(
            name.to_string()
                .starts_with("`localhost` is a loopback name"),
            "{name}"
        );
        assert!(
            policy
                .check_host("::ffff:127.0.0.1")
                .unwrap_err()
                .to_string()
                .starts_with("`::ffff:127.0.0.1` is a loopback address (127.0.0.0/8, IPv4-mapped)")
        );
    }

    #[test]
    fn the_allow_list_lifts_exactly_what_it_names() {
        let policy: ProxyHostPolicy = " 127.0.0.0/8 , ::1,localhost,, 169.254.169.254,fe80::/16"
            .parse()
            .unwrap();
        for host in [
            "127.0.0.1",
            "127.255.255.255",
            "2130706433",
            "::ffff:127.0.0.1",
            "::1",
            "localhost",
            "LOCALHOST.",
            "169.254.169.254",
            "fe80::1",
            "fe80:0:ffff::1",
        ] {
            assert!(policy.check_host(host).is_ok(), "{host}");
        }
        for (host, want) in [
            ("169.254.169.253", RefusedKind::LinkLocal),
            ("fe81::1", RefusedKind::LinkLocal),
            ("0.0.0.0", RefusedKind::Unspecified),
            ("::", RefusedKind::Unspecified),
            ("api.localhost", RefusedKind::LoopbackName),
            ("224.0.0.1", RefusedKind::Multicast),
        ] {
            assert_eq!(kind(&policy, host), Some(want), "{host}");
        }
        // A name allows the name, not what it resolves to.
        let name_only: ProxyHostPolicy = "localhost".parse().unwrap();
        assert!(name_only.check_host("localhost").is_ok());
        assert!(
            name_only
                .check_resolved("localhost", ip("127.0.0.1"))
                .is_err()
        );
        assert!(name_only.check_host("127.0.0.1").is_err());
        // Round trip through Display.
        assert_eq!(
            policy.to_string(),
            "127.0.0.0/8,::1,localhost,169.254.169.254,fe80::/16"
        );
        assert_eq!(
            policy.to_string().parse::<ProxyHostPolicy>().unwrap(),
            policy
        );
        assert_eq!(ProxyHostPolicy::default().to_string(), "");
        assert_eq!(
            "".parse::<ProxyHostPolicy>().unwrap(),
            ProxyHostPolicy::default()
        );
        // Everything, for a lab: two ranges.
        let all: ProxyHostPolicy = "0.0.0.0/0,::/0".parse().unwrap();
        for (range, _) in REFUSED {
            assert!(all.check_ip(range.first()).is_ok() && all.check_ip(range.last()).is_ok());
        }
    }

    #[test]
    fn bad_allow_list_entries_are_named_in_the_error() {
        for (list, needle) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("fe80::1/10", "did you mean fe80::/10?"),
            ("127.0.0.0/33", "at most 32 for IPv4"),
            ("::1/129", "at most 128 for IPv6"),
            ("127.0.0.0/x", "`x` is not a prefix length"),
            ("127.0.0.0/+8", "`+8` is not a prefix length"),
            ("127.0.0.0/", "`` is not a prefix length"),
            ("127.1/8", "`127.1` is not an IP address"),
            ("[::1]/128", "`[::1]` is not an IP address"),
            ("localhost/8", "`localhost` is not an IP address"),
            (
                "127.1",
                "reads as the address 127.0.0.1; write it as 127.0.0.1",
            ),
            ("2130706433", "write it as 127.0.0.1"),
            ("*.localhost", "wildcards are not supported"),
            ("proxy.corp", "list those"),
            ("ok.localhost,bad name", "`bad name`"),
        ] {
            match list.parse::<ProxyHostPolicy>() {
                Err(Error::InvalidInput { field, reason }) => {
                    assert_eq!(field, "allow_proxy_hosts");
                    assert!(reason.contains(needle), "{list}: {reason}");
                }
                other => panic!("{list}: {other:?}"),
            }
        }
        assert_eq!(
            "[::1],x.localhost"
                .parse::<ProxyHostPolicy>()
                .unwrap()
                .to_string(),
            "::1,x.localhost"
        );
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let r = IpRange::new(ip("10.0.0.0"), 8).unwrap();
        assert!(r.contains(ip("10.0.0.0")) && r.contains(ip("10.255.255.255")));
        assert!(!r.contains(ip("11.0.0.0")) && !r.contains(ip("9.255.255.255")));
        assert!(!r.contains(ip("::ffff:10.0.0.1")));
        let everything = IpRange::new(ip("::"), 0).unwrap();
        assert!(everything.contains(ip("ffff::1")) && !everything.contains(ip("1.2.3.4")));
        assert_eq!(
            everything.last(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            IpRange::new(ip("0.0.0.0"), 0).unwrap().last(),
            ip("255.255.255.255")
        );
        assert_eq!(IpRange::single(ip("::1")).to_string(), "::1");
    }
}
