//! Reading a provider's proxy list for `pharox proxy import`: one URL a
//! line, CSV with a header, or JSON Lines, into proxies of one pool.
//!
//! Parsing is separate from storing: [`parse`] reads the whole input and
//! returns every proxy it could build and every line it could not, with
//! its line number and the reason, so the caller can refuse the whole file
//! before writing anything (the default of `pharox proxy import`).
//!
//! A line without an `id` gets one derived from what identifies the
//! endpoint, [`derived_id`]: `scheme://[user@]host:port`. Importing the same
//! file again therefore updates the same proxies (keeping their leases)
//! instead of adding copies, and a password change at the provider is an
//! update, not a new proxy.

use std::collections::HashMap;
use std::io::BufRead;
use std::str::FromStr;

use pharox_core::{Credentials, PoolId, Proxy, ProxyHostPolicy, ProxyId, ProxyProtocol};

/// The three input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One proxy a line: `scheme://[user:pass@]host:port`, `host:port`
    /// (with the default protocol) or `host:port:user:pass`.
    Url,
    /// CSV with a header naming the columns.
    Csv,
    /// One JSON object a line, the body of `POST /v1/pools/{pool}/proxies/`.
    Jsonl,
}

impl Format {
    /// The format a file name implies: `.csv`, `.jsonl` / `.ndjson`, else URL lines.
    pub fn from_file_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Self::Csv
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Self::Jsonl
        } else {
            Self::Url
        }
    }
}

/// Values for fields a line leaves out.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Protocol of `host:port` lines and of CSV rows without one.
    pub protocol: ProxyProtocol,
    /// Country of proxies that give none.
    pub country: Option<String>,
    /// Source of proxies that give none.
    pub source: Option<String>,
    /// `max_concurrency` of proxies that give none.
    pub max_concurrency: Option<u32>,
    /// Hosts refused (loopback, link-local, metadata addresses…) unless allowed.
    pub hosts: ProxyHostPolicy,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            protocol: ProxyProtocol::Http,
            country: None,
            source: None,
            max_concurrency: None,
            hosts: ProxyHostPolicy::default(),
        }
    }
}

/// A line that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// 1-based line number in the input (the header is line 1 of a CSV).
    pub line: usize,
    /// Why, without the line's text (it may hold a password).
    pub reason: String,
}

/// A proxy read from a line.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The proxy.
    pub proxy: Proxy,
    /// Whether the line gave a status (CSV `status`, JSON `status`). If not,
    /// an update keeps the stored proxy's health (status, last check,
    /// latency): a provider's list says what exists, not what works.
    pub status_given: bool,
}

/// Everything read from an input.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The proxies, in input order.
    pub proxies: Vec<Entry>,
    /// The lines that were refused, in input order.
    pub rejected: Vec<Rejected>,
    /// Lines read, blank lines and comments included.
    pub lines: usize,
}

/// The id of a proxy given without one: `scheme://[user@]host:port`, the
/// host lowercased and an IPv6 address in brackets.
pub fn derived_id(proxy: &Proxy) -> ProxyId {
    let host = proxy.host.to_ascii_lowercase();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let user = proxy
        .credentials
        .as_ref()
        .map(|c| format!("{}@", c.username))
        .unwrap_or_default();
    ProxyId::from(format!(
        "{}://{user}{host}:{}",
        proxy.protocol.scheme(),
        proxy.port
    ))
}

/// Reads `input` whole. I/O errors end the read (the caller reports them);
/// bad lines are collected in [`Parsed::rejected`]. Two lines naming the
/// same proxy (same id) reject the later one.
pub fn parse(
    input: impl BufRead,
    format: Format,
    pool: &PoolId,
    defaults: &Defaults,
) -> std::io::Result<Parsed> {
    let mut parsed = match format {
        Format::Url => parse_lines(input, pool, defaults, url_line)?,
        Format::Jsonl => parse_lines(input, pool, defaults, json_line)?,
        Format::Csv => parse_csv(input, pool, defaults)?,
    };
    reject_duplicates(&mut parsed);
    Ok(parsed)
}

/// A proxy and whether its line gave a status.
type Read = (Proxy, bool);

type LineParser = fn(&str, &PoolId, &Defaults) -> Result<Read, String>;

fn parse_lines(
    input: impl BufRead,
    pool: &PoolId,
    defaults: &Defaults,
    line_parser: LineParser,
) -> std::io::Result<Parsed> {
    let mut parsed = Parsed::default();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        parsed.lines = index + 1;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match line_parser(text, pool, defaults).and_then(|r| finish(r, defaults)) {
            Ok((proxy, status_given)) => parsed.proxies.push(Entry {
                line: index + 1,
                proxy,
                status_given,
            }),
            Err(reason) => parsed.rejected.push(Rejected {
                line: index + 1,
                reason,
            }),
        }
    }
    Ok(parsed)
}

/// Defaults, the derived id, and the checks every store applies.
fn finish((mut proxy, status_given): Read, defaults: &Defaults) -> Result<Read, String> {
    if proxy.country.is_none() {
        proxy.country.clone_from(&defaults.country);
    }
    if proxy.source.is_none() {
        proxy.source.clone_from(&defaults.source);
    }
    if proxy.max_concurrency.is_none() {
        proxy.max_concurrency = defaults.max_concurrency;
    }
    if proxy.id.as_str().is_empty() {
        proxy.id = derived_id(&proxy);
    }
    defaults
        .hosts
        .check_host(&proxy.host)
        .map_err(|refused| format!("host: {refused}"))?;
    pharox_core::validate::proxy(&proxy).map_err(reason)?;
    Ok((proxy, status_given))
}

/// A store's refusal as `field: reason`, the form of every import reason.
fn reason(e: pharox_core::Error) -> String {
    match e {
        pharox_core::Error::InvalidInput { field, reason } => format!("{field}: {reason}"),
        other => other.to_string(),
    }
}

fn reject_duplicates(parsed: &mut Parsed) {
    let mut first: HashMap<ProxyId, usize> = HashMap::with_capacity(parsed.proxies.len());
    let mut kept = Vec::with_capacity(parsed.proxies.len());
    for entry in std::mem::take(&mut parsed.proxies) {
        match first.get(&entry.proxy.id) {
            Some(&earlier) => parsed.rejected.push(Rejected {
                line: entry.line,
                reason: format!("the same proxy as line {earlier} (id {})", entry.proxy.id),
            }),
            None => {
                first.insert(entry.proxy.id.clone(), entry.line);
                kept.push(entry);
            }
        }
    }
    parsed.rejected.sort_by_key(|r| r.line);
    parsed.proxies = kept;
}

/// A proxy with an empty id, to be derived by [`finish`].
fn endpoint(
    pool: &PoolId,
    host: String,
    port: u16,
    protocol: ProxyProtocol,
    credentials: Option<Credentials>,
) -> Proxy {
    let mut proxy = Proxy::new(pool.clone(), host, port, protocol);
    proxy.id = ProxyId::from("");
    proxy.credentials = credentials;
    proxy
}

fn url_line(text: &str, pool: &PoolId, defaults: &Defaults) -> Result<Read, String> {
    Ok((url_proxy(text, pool, defaults)?, false))
}

fn url_proxy(text: &str, pool: &PoolId, defaults: &Defaults) -> Result<Proxy, String> {
    if text.contains("://") {
        return proxy_url(text, pool);
    }
    // host:port or host:port:user:pass (IPv6 hosts need the URL form).
    let parts: Vec<&str> = text.split(':').collect();
    let (host, port, credentials) = match parts.as_slice() {
        [host, port] => (*host, *port, None),
        [host, port, user, pass] => (*host, *port, Some(credentials(user, pass)?)),
        _ => {
            return Err(
                "expected scheme://[user:pass@]host:port, host:port or host:port:user:pass".into(),
            );
        }
    };
    if host.is_empty() || host.contains(['/', '@', '[', ']', ' ']) {
        return Err("host: not a host name or IPv4 address".into());
    }
    Ok(endpoint(
        pool,
        host.to_owned(),
        parse_port(port)?,
        defaults.protocol,
        credentials,
    ))
}

fn credentials(user: &str, pass: &str) -> Result<Credentials, String> {
    if user.is_empty() || pass.is_empty() {
        return Err("username and password must be given together, both non-empty".into());
    }
    Ok(Credentials::new(user, pass))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("port: expected a number from 1 to 65535".into()),
        Ok(p) => Ok(p),
    }
}

/// `scheme://[user:pass@]host:port`, user and password percent-decoded.
fn proxy_url(text: &str, pool: &PoolId) -> Result<Proxy, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a proxy URL: {e}"))?;
    let protocol = ProxyProtocol::from_str(url.scheme()).map_err(|_| {
        format!(
            "scheme {:?}: expected http, https, socks4 or socks5",
            url.scheme()
        )
    })?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("a proxy URL has no path, query or fragment".into());
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("the URL names no host".into()),
    };
    let port = url
        .port_or_known_default()
        .ok_or("port: the URL gives none (socks proxies need one)")?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "credentials: not UTF-8 once percent-decoded".to_owned())
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(pass)) => Some(credentials(&decode(user)?, &decode(pass)?)?),
        (_, None) => {
            return Err("username and password must be given together, both non-empty".into());
        }
    };
    Ok(endpoint(pool, host, port, protocol, credentials))
}

fn json_line(text: &str, pool: &PoolId, _: &Defaults) -> Result<Read, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let body: pharox_wire::CreateProxy =
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            match e.path().to_string().as_str() {
                "" | "." => e.inner().to_string(),
                path => format!("{path}: {}", e.inner()),
            }
        })?;
    de.end().map_err(|e| e.to_string())?;
    let given_id = body.id.is_some();
    let status_given = body.status.is_some();
    let mut proxy = body.into_proxy(pool.clone()).map_err(reason)?;
    if !given_id {
        proxy.id = ProxyId::from("");
    }
    Ok((proxy, status_given))
}

/// CSV columns (header names, case-insensitive).
const CSV_COLUMNS: &[&str] = &[
    "id",
    "url",
    "host",
    "port",
    "protocol",
    "username",
    "password",
    "country",
    "city",
    "source",
    "isp",
    "asn",
    "latitude",
    "longitude",
    "max_concurrency",
    "status",
];

fn parse_csv(input: impl BufRead, pool: &PoolId, defaults: &Defaults) -> std::io::Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut parsed = Parsed::default();
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return csv_failure(parsed, e, 1),
    };
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let name = name.to_ascii_lowercase();
        match CSV_COLUMNS.iter().position(|c| *c == name) {
            Some(i) if columns.contains(&i) => {
                return reject_header(parsed, format!("column {name:?} appears twice"));
            }
            Some(i) => columns.push(i),
            None => {
                return reject_header(
                    parsed,
                    format!(
                        "unknown column {name:?}; the columns are {}",
                        CSV_COLUMNS.join(", ")
                    ),
                );
            }
        }
    }
    let has = |c: &str| columns.iter().any(|&i| CSV_COLUMNS[i] == c);
    if !(has("url") || (has("host") && has("port"))) {
        return reject_header(
            parsed,
            "the header needs a url column, or host and port".into(),
        );
    }
    parsed.lines = 1;
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line() as usize);
                parsed.lines = line;
                let row = columns
                    .iter()
                    .zip(record.iter())
                    .map(|(&i, v)| (CSV_COLUMNS[i], v))
                    .filter(|(_, v)| !v.is_empty());
                match csv_row(row, pool, defaults).and_then(|r| finish(r, defaults)) {
                    Ok((proxy, status_given)) => parsed.proxies.push(Entry {
                        line,
                        proxy,
                        status_given,
                    }),
                    Err(reason) => parsed.rejected.push(Rejected { line, reason }),
                }
            }
            Err(e) => {
                let line = e.position().map_or(line + 1, |p| p.line() as usize);
                match e.kind() {
                    csv::ErrorKind::Io(_) => return Err(std::io::Error::other(e.to_string())),
                    // A row with the wrong number of fields: reject it, read on.
                    csv::ErrorKind::UnequalLengths { len, .. } => {
                        parsed.rejected.push(Rejected {
                            line,
                            reason: format!("{len} fields, the header has {}", columns.len()),
                        });
                    }
                    _ => return csv_failure(parsed, e, line),
                }
            }
        }
    }
    Ok(parsed)
}

fn reject_header(mut parsed: Parsed, reason: String) -> std::io::Result<Parsed> {
    parsed.lines = parsed.lines.max(1);
    parsed.rejected.push(Rejected { line: 1, reason });
    Ok(parsed)
}

fn csv_failure(mut parsed: Parsed, e: csv::Error, line: usize) -> std::io::Result<Parsed> {
    if let csv::ErrorKind::Io(_) = e.kind() {
        return Err(std::io::Error::other(e.to_string()));
    }
    // Invalid UTF-8 and the like: the rest of the file cannot be trusted.
    let reason = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 (the rest of the file was not read)".into(),
        _ => format!("unreadable CSV (the rest of the file was not read): {e}"),
    };
    parsed.rejected.push(Rejected { line, reason });
    Ok(parsed)
}

fn csv_row<'a>(
    row: impl Iterator<Item = (&'a str, &'a str)>,
    pool: &PoolId,
    defaults: &Defaults,
) -> Result<Read, String> {
    let cells: HashMap<&str, &str> = row.collect();
    let get = |c: &str| cells.get(c).copied();
    let mut proxy = match get("url") {
        Some(url) => {
            if get("host").is_some() || get("port").is_some() {
                return Err("give url, or host and port, not both".into());
            }
            if get("protocol").is_some() {
                return Err("protocol: the url gives it".into());
            }
            url_proxy(url, pool, defaults)?
        }
        None => {
            let host = get("host").ok_or("host: missing")?;
            let port = parse_port(get("port").ok_or("port: missing")?)?;
            let protocol = match get("protocol") {
                Some(p) => ProxyProtocol::from_str(p).map_err(reason)?,
                None => defaults.protocol,
            };
            endpoint(pool, host.to_owned(), port, protocol, None)
        }
    };
    match (get("username"), get("password")) {
        (None, None) => {}
        (Some(user), Some(pass)) => {
            if proxy.credentials.is_some() {
                return Err("username: the url gives the credentials".into());
            }
            proxy.credentials = Some(credentials(user, pass)?);
        }
        _ => return Err("username and password must be given together, both non-empty".into()),
    }
    if let Some(id) = get("id") {
        proxy.id = ProxyId::from(id);
    }
    let text = |c: &str| get(c).map(str::to_owned);
    proxy.country = text("country");
    proxy.city = text("city");
    proxy.source = text("source");
    proxy.isp = text("isp");
    proxy.asn = number(get("asn"), "asn")?;
    proxy.max_concurrency = number(get("max_concurrency"), "max_concurrency")?;
    if let Some(status) = get("status") {
        proxy.status = status
            .parse()
            .map_err(|e: pharox_core::Error| e.to_string())?;
    }
    match (
        number::<f64>(get("latitude"), "latitude")?,
        number::<f64>(get("longitude"), "longitude")?,
    ) {
        (Some(lat), Some(lon)) => (proxy.latitude, proxy.longitude) = (Some(lat), Some(lon)),
        (None, None) => {}
        _ => return Err("latitude and longitude must be given together".into()),
    }
    Ok((proxy, get("status").is_some()))
}

fn number<T: FromStr>(cell: Option<&str>, column: &str) -> Result<Option<T>, String> {
    cell.map(|v| {
        v.parse()
            .map_err(|_| format!("{column}: {v:?} is not a valid number"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: Format) -> Parsed {
        parse(
            text.as_bytes(),
            format,
            &PoolId::from("p"),
            &Defaults::default(),
        )
        .unwrap()
    }

    #[test]
    fn url_lines_in_every_spelling_providers_use() {
        let parsed = read(
            "# provider export\n\
             http://alice:s%40cret@gw.example.com:8080\n\
             \n\
             socks5://[2001:db8::1]:1080\n\
             203.0.113.7:3128\n\
             203.0.113.8:3128:bob:pw\n\
             https://proxy.example.net\n",
            Format::Url,
        );
        assert_eq!(parsed.rejected, vec![]);
        assert_eq!(parsed.lines, 7);
        let ids: Vec<_> = parsed
            .proxies
            .iter()
            .map(|e| (e.line, e.proxy.id.as_str().to_owned()))
            .collect();
        assert_eq!(
            ids,
            vec![
                (2, "http://alice@gw.example.com:8080".to_owned()),
                (4, "socks5://[2001:db8::1]:1080".to_owned()),
                (5, "http://203.0.113.7:3128".to_owned()),
                (6, "http://bob@203.0.113.8:3128".to_owned()),
                (7, "https://proxy.example.net:443".to_owned()),
            ]
        );
        let alice = &parsed.proxies[0].proxy;
        let creds = alice.credentials.as_ref().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.expose()),
            ("alice", "s@cret")
        );
        assert_eq!(parsed.proxies[1].proxy.host, "2001:db8::1");
    }

    #[test]
    fn bad_url_lines_are_rejected_with_their_line_and_never_their_text() {
        let parsed = read(
            "ftp://h:1\n\
             http://user@h:1\n\
             socks5://h\n\
             http://h:0\n\
             h:99999\n\
             http://secret-pass@h:1/path\n\
             http://127.0.0.1:8080\n\
             http://u:p@h:1\n\
             http://u:other@h:1\n",
            Format::Url,
        );
        let lines: Vec<_> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5, 6, 7, 9], "{:?}", parsed.rejected);
        assert!(
            parsed.rejected[6].reason.starts_with("host:"),
            "{:?}",
            parsed.rejected[6]
        );
        assert!(
            parsed.rejected[7].reason.contains("line 8"),
            "{:?}",
            parsed.rejected[7]
        );
        for r in &parsed.rejected {
            assert!(
                !r.reason.contains("secret-pass") && !r.reason.contains("other"),
                "{r:?}"
            );
        }
        assert_eq!(parsed.proxies.len(), 1);
    }

    #[test]
    fn csv_with_any_columns_and_bad_rows() {
        let parsed = read(
            "host,port,protocol,username,password,country,latitude,longitude,max_concurrency,asn\n\
             203.0.113.1,8080,socks5,u,p,DE,52.5,13.4,4,3320\n\
             203.0.113.2,8080,,,,US,,,,\n\
             203.0.113.3,notaport,http,,,,,,,\n\
             203.0.113.4,8080,http,u,,,,,,\n\
             203.0.113.5,8080,http,,,,10,,,\n\
             203.0.113.6,8080\n\
             \"203.0.113.7\",8081,http,,,FR,,,0,\n",
            Format::Csv,
        );
        let lines: Vec<_> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8], "{:?}", parsed.rejected);
        assert_eq!(parsed.proxies.len(), 2);
        let de = &parsed.proxies[0].proxy;
        assert_eq!(de.protocol, ProxyProtocol::Socks5);
        assert_eq!((de.latitude, de.longitude), (Some(52.5), Some(13.4)));
        assert_eq!((de.max_concurrency, de.asn), (Some(4), Some(3320)));
        assert_eq!(de.id.as_str(), "socks5://u@203.0.113.1:8080");
        assert_eq!(parsed.proxies[1].proxy.country.as_deref(), Some("US"));
    }

    #[test]
    fn csv_header_problems_reject_line_one() {
        for header in ["host,prot\n", "host,host,port\n", "country\n"] {
            let parsed = read(&format!("{header}203.0.113.1,1\n"), Format::Csv);
            assert_eq!(parsed.proxies.len(), 0, "{header}");
            assert_eq!(parsed.rejected.len(), 1, "{header}");
            assert_eq!(parsed.rejected[0].line, 1, "{header}");
        }
    }

    #[test]
    fn csv_with_url_and_id_columns() {
        let parsed = read(
            "id,url,country\nmine,http://u:p@203.0.113.1:1,NL\n,socks5://203.0.113.2:2,\n",
            Format::Csv,
        );
        assert_eq!(parsed.rejected, vec![]);
        assert_eq!(parsed.proxies[0].proxy.id.as_str(), "mine");
        assert_eq!(
            parsed.proxies[1].proxy.id.as_str(),
            "socks5://203.0.113.2:2"
        );
    }

    #[test]
    fn json_lines_take_the_api_body() {
        let parsed = read(
            "{\"host\":\"203.0.113.1\",\"port\":1,\"protocol\":\"http\",\"country\":\"DE\"}\n\
             {\"id\":\"x\",\"host\":\"203.0.113.2\",\"port\":2}\n\
             {\"host\":\"203.0.113.3\",\"port\":\"3\"}\n\
             {\"host\":\"203.0.113.4\",\"port\":4,\"bogus\":1}\n\
             not json\n",
            Format::Jsonl,
        );
        let lines: Vec<_> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5], "{:?}", parsed.rejected);
        assert!(
            parsed.rejected[0].reason.starts_with("port"),
            "{:?}",
            parsed.rejected[0]
        );
        assert_eq!(parsed.proxies[0].proxy.id.as_str(), "http://203.0.113.1:1");
        assert_eq!(parsed.proxies[1].proxy.id.as_str(), "x");
    }

    #[test]
    fn defaults_fill_only_what_a_line_leaves_out() {
        let defaults = Defaults {
            protocol: ProxyProtocol::Socks5,
            country: Some("BR".into()),
            source: Some("acme".into()),
            max_concurrency: Some(3),
            ..Defaults::default()
        };
        let parsed = parse(
            "host,port,country\n203.0.113.1,1,\n203.0.113.2,2,AR\n".as_bytes(),
            Format::Csv,
            &PoolId::from("p"),
            &defaults,
        )
        .unwrap();
        let got: Vec<_> = parsed
            .proxies
            .iter()
            .map(|e| {
                let p = &e.proxy;
                (
                    p.protocol,
                    p.country.clone(),
                    p.source.clone(),
                    p.max_concurrency,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    ProxyProtocol::Socks5,
                    Some("BR".into()),
                    Some("acme".into()),
                    Some(3)
                ),
                (
                    ProxyProtocol::Socks5,
                    Some("AR".into()),
                    Some("acme".into()),
                    Some(3)
                ),
            ]
        );
    }

    #[test]
    fn format_follows_the_file_name() {
        assert_eq!(Format::from_file_name("a.CSV"), Format::Csv);
        assert_eq!(Format::from_file_name("a.ndjson"), Format::Jsonl);
        assert_eq!(Format::from_file_name("proxies.txt"), Format::Url);
    }
}
