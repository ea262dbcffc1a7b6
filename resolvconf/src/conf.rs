//! The resolv.conf model: a list of lines, each keeping its text and what it means.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// A `nameserver` address, IPv6 ones possibly with a zone (`fe80::1%eth0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nameserver {
    addr: IpAddr,
    zone: Option<String>,
}

impl Nameserver {
    /// A nameserver without zone.
    pub fn new(addr: IpAddr) -> Self {
        Self { addr, zone: None }
    }

    /// The address, without zone.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The IPv6 zone (interface name or index), if any.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// Whether this is an IPv6 nameserver (IPv4-mapped addresses count as IPv4).
    pub fn is_ipv6(&self) -> bool {
        self.addr.to_canonical().is_ipv6()
    }

    /// Whether the address is a loopback address (`127.0.0.0/8`, `::1`, or an IPv4-mapped
    /// loopback), which cannot be reached from a container's own network namespace.
    pub fn is_loopback(&self) -> bool {
        self.addr.to_canonical().is_loopback()
    }

    /// The address as a host prefix, `a.b.c.d/32` or `x::y/128`, zone dropped (libnetwork's
    /// `GetNameserversAsCIDR`).
    pub fn cidr(&self) -> String {
        let len = if self.addr.is_ipv4() { 32 } else { 128 };
        format!("{}/{len}", self.addr)
    }
}

impl From<IpAddr> for Nameserver {
    fn from(addr: IpAddr) -> Self {
        Self::new(addr)
    }
}

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.zone {
            Some(zone) => write!(f, "{}%{zone}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl FromStr for Nameserver {
    type Err = Error;

    /// Parses an IPv4 address, an IPv6 address, or an IPv6 address with a non-empty
    /// `%zone` made of printable ASCII.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidNameserver(text.to_owned());
        let (addr, zone) = match text.split_once('%') {
            Some((addr, zone)) => (addr, Some(zone)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let zone = match zone {
            None => None,
            Some(zone)
                if addr.is_ipv6()
                    && !zone.is_empty()
                    && zone.bytes().all(|b| b.is_ascii_graphic() && b != b'#') =>
            {
                Some(zone.to_owned())
            }
            Some(_) => return Err(invalid()),
        };
        Ok(Self { addr, zone })
    }
}

/// What a line of resolv.conf says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Directive {
    /// `nameserver <address>`.
    Nameserver(Nameserver),
    /// `search <domain>...` (possibly no domain).
    Search(Vec<String>),
    /// `options <option>...` (possibly no option).
    Options(Vec<String>),
    /// Anything else: comments, blank lines, other keywords (`domain`, `sortlist`, ...) and
    /// malformed lines such as `nameserver` with a bad address. Kept verbatim.
    Other,
}

/// One line: its exact text (without the newline) and its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    text: String,
    directive: Directive,
}

impl Line {
    /// Parses one line (without its newline). Never fails: what is not understood is
    /// [`Directive::Other`].
    fn parse(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            directive: directive(text),
        }
    }

    /// The line's text, exactly as read (or as generated), without newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the line says.
    pub fn directive(&self) -> &Directive {
        &self.directive
    }

    fn nameserver(server: &Nameserver) -> Self {
        Self {
            text: format!("nameserver {server}"),
            directive: Directive::Nameserver(server.clone()),
        }
    }

    fn search(domains: &[String]) -> Self {
        Self {
            text: format!("search {}", domains.join(" ")),
            directive: Directive::Search(domains.to_vec()),
        }
    }

    fn options(options: &[String]) -> Self {
        Self {
            text: format!("options {}", options.join(" ")),
            directive: Directive::Options(options.to_vec()),
        }
    }
}

/// The meaning of a line. A `#` starts a comment anywhere in the line (libnetwork's rule).
fn directive(text: &str) -> Directive {
    let content = text.split_once('#').map_or(text, |(before, _)| before);
    let mut fields = content.split_whitespace();
    let Some(keyword) = fields.next() else {
        return Directive::Other;
    };
    match keyword {
        "nameserver" => match (fields.next(), fields.next()) {
            (Some(addr), None) => addr.parse().map_or(Directive::Other, Directive::Nameserver),
            _ => Directive::Other,
        },
        "search" => Directive::Search(fields.map(str::to_owned).collect()),
        "options" => Directive::Options(fields.map(str::to_owned).collect()),
        _ => Directive::Other,
    }
}

/// A parsed resolv.conf: its lines in order, each keeping its original text, so that lines
/// this crate does not touch (comments, unknown keywords, malformed lines) are written back
/// exactly as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    lines: Vec<Line>,
}

impl ResolvConf {
    /// Parses resolv.conf content. Never fails and never panics: lines that are not
    /// understood are kept as [`Directive::Other`].
    pub fn parse(text: &str) -> Self {
        let body = text.strip_suffix('\n').unwrap_or(text);
        if text.is_empty() {
            return Self::default();
        }
        Self {
            lines: body.split('\n').map(Line::parse).collect(),
        }
    }

    /// The file content: every line followed by a newline (empty for no lines).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.lines.iter().map(|l| l.text.len() + 1).sum());
        for line in &self.lines {
            out.push_str(&line.text);
            out.push('\n');
        }
        out
    }

    /// The lines, in order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Every nameserver, in file order.
    pub fn nameservers(&self) -> impl Iterator<Item = &Nameserver> {
        self.lines.iter().filter_map(|line| match &line.directive {
            Directive::Nameserver(server) => Some(server),
            _ => None,
        })
    }

    /// The domains of the last `search` line (libnetwork: the last line wins), `None` when
    /// there is no `search` line.
    pub fn search(&self) -> Option<&[String]> {
        self.lines
            .iter()
            .rev()
            .find_map(|line| match &line.directive {
                Directive::Search(domains) => Some(domains.as_slice()),
                _ => None,
            })
    }

    /// The options of the last `options` line (libnetwork: the last line wins), `None` when
    /// there is no `options` line.
    pub fn options(&self) -> Option<&[String]> {
        self.lines
            .iter()
            .rev()
            .find_map(|line| match &line.directive {
                Directive::Options(options) => Some(options.as_slice()),
                _ => None,
            })
    }

    /// The value of the first `ndots` option of [`ResolvConf::options`], `None` when there is
    /// none.
    ///
    /// # Errors
    /// [`Error::InvalidNdots`] for `ndots` without a value or with more than one `:`, and
    /// [`Error::InvalidNdotsNumber`] for a value that is not an integer >= 0 (`ndots:foo`,
    /// `ndots:-1`), the checks libnetwork makes before starting the embedded resolver.
    pub fn ndots(&self) -> Result<Option<u32>, Error> {
        let Some(option) = self
            .options()
            .unwrap_or_default()
            .iter()
            .find(|option| option.split(':').next() == Some("ndots"))
        else {
            return Ok(None);
        };
        let mut parts = option.split(':').skip(1);
        let (Some(value), None) = (parts.next(), parts.next()) else {
            return Err(Error::InvalidNdots(option.clone()));
        };
        value
            .parse()
            .map(Some)
            .map_err(|_| Error::InvalidNdotsNumber(value.to_owned()))
    }

    /// Keeps only the nameserver lines for which `keep` is true; other lines are untouched.
    pub fn retain_nameservers(&mut self, mut keep: impl FnMut(&Nameserver) -> bool) {
        self.lines.retain(|line| match &line.directive {
            Directive::Nameserver(server) => keep(server),
            _ => true,
        });
    }

    /// Appends one `nameserver` line per server, after every other line.
    pub fn append_nameservers<'a>(&mut self, servers: impl IntoIterator<Item = &'a Nameserver>) {
        self.lines.extend(servers.into_iter().map(Line::nameserver));
    }

    /// Replaces every `nameserver` line by one line per server, placed where the first
    /// nameserver line was (at the end when there was none).
    pub fn set_nameservers(&mut self, servers: &[Nameserver]) {
        let new = servers.iter().map(Line::nameserver).collect();
        self.replace(
            |d| matches!(d, Directive::Nameserver(_)),
            new,
            Placement::End,
        );
    }

    /// Replaces every `search` line by one listing `domains`, placed where the first search
    /// line was (before the first nameserver when there was none). An empty list, or exactly
    /// `["."]` (Docker's `--dns-search .`), removes the search lines.
    ///
    /// # Errors
    /// [`Error::InvalidSearchDomain`] for an empty domain or one containing whitespace or `#`;
    /// nothing is changed then.
    pub fn set_search(&mut self, domains: &[String]) -> Result<(), Error> {
        let suppress = domains.is_empty() || domains == ["."];
        if let Some(bad) = domains.iter().find(|d| !suppress && !is_valid_token(d)) {
            return Err(Error::InvalidSearchDomain(bad.clone()));
        }
        let new = if suppress {
            Vec::new()
        } else {
            vec![Line::search(domains)]
        };
        let is_search = |d: &Directive| matches!(d, Directive::Search(_));
        self.replace(is_search, new, Placement::BeforeNameservers);
        Ok(())
    }

    /// Replaces every `options` line by one listing `options`, placed where the first options
    /// line was (at the end when there was none). An empty list removes the options lines.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for an empty option or one containing whitespace or `#`;
    /// nothing is changed then.
    pub fn set_options(&mut self, options: &[String]) -> Result<(), Error> {
        if let Some(bad) = options.iter().find(|o| !is_valid_token(o)) {
            return Err(Error::InvalidOption(bad.clone()));
        }
        let new = if options.is_empty() {
            Vec::new()
        } else {
            vec![Line::options(options)]
        };
        self.replace(|d| matches!(d, Directive::Options(_)), new, Placement::End);
        Ok(())
    }

    /// Removes the lines matching `matches` and puts `new` where the first of them was, or at
    /// `fallback` when none matched.
    fn replace(
        &mut self,
        matches: impl Fn(&Directive) -> bool,
        new: Vec<Line>,
        fallback: Placement,
    ) {
        let position = self.lines.iter().position(|line| matches(&line.directive));
        self.lines.retain(|line| !matches(&line.directive));
        let at = match (position, fallback) {
            (Some(position), _) => position,
            (None, Placement::End) => self.lines.len(),
            (None, Placement::BeforeNameservers) => self
                .lines
                .iter()
                .position(|line| matches!(line.directive, Directive::Nameserver(_)))
                .unwrap_or(self.lines.len()),
        };
        self.lines.splice(at..at, new);
    }
}

/// Where replaced lines go when the file had none of their kind.
#[derive(Clone, Copy)]
enum Placement {
    End,
    BeforeNameservers,
}

/// Whether `token` can be written as one field of a `search` or `options` line and read back
/// unchanged.
fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && !token.contains('#') && !token.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_parses_addresses_and_ipv6_zones() {
        let plain: Nameserver = "1.2.3.4".parse().unwrap();
        assert_eq!(plain.zone(), None);
        let zoned: Nameserver = "fe80::1%eth0".parse().unwrap();
        assert_eq!(zoned.zone(), Some("eth0"));
        assert_eq!(zoned.to_string(), "fe80::1%eth0");
        assert!(zoned.is_ipv6());
        for bad in [
            "1.2.3.4%eth0",
            "fe80::1%",
            "foo",
            "",
            "1.2.3",
            "fe80::1%a#b",
        ] {
            let err = bad.parse::<Nameserver>().unwrap_err();
            assert!(matches!(err, Error::InvalidNameserver(_)), "{bad}");
        }
    }

    #[test]
    fn nameserver_cidr_is_a_host_prefix_without_zone() {
        let v4: Nameserver = "1.2.3.4".parse().unwrap();
        assert_eq!(v4.cidr(), "1.2.3.4/32");
        let v6: Nameserver = "fe80::1%eth0".parse().unwrap();
        assert_eq!(v6.cidr(), "fe80::1/128");
    }

    #[test]
    fn loopback_detection_covers_the_whole_ipv4_block_and_mapped_addresses() {
        for addr in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.53"] {
            assert!(addr.parse::<Nameserver>().unwrap().is_loopback(), "{addr}");
        }
        for addr in ["128.0.0.1", "10.0.0.1", "::2", "fe80::1"] {
            assert!(!addr.parse::<Nameserver>().unwrap().is_loopback(), "{addr}");
        }
    }
}
