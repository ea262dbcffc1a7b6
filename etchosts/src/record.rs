//! Host records and the lines of a hosts file.

use std::fmt;
use std::net::IpAddr;

use crate::Error;

/// An address and the names it answers to: one line `IP<TAB>name1 name2 ...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    ip: IpAddr,
    names: Vec<String>,
}

impl Record {
    /// A record for `ip` with `names` (at least one; each non-empty, without whitespace or
    /// `#`, so that the line reads back as written).
    ///
    /// # Errors
    /// [`Error::NoNames`] or [`Error::InvalidName`].
    pub fn new<S: Into<String>>(
        ip: IpAddr,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, Error> {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.is_empty() {
            return Err(Error::NoNames);
        }
        if let Some(bad) = names.iter().find(|name| !is_valid_name(name)) {
            return Err(Error::InvalidName(bad.clone()));
        }
        Ok(Self { ip, names })
    }

    /// A record from libnetwork's form: the names as one space-separated string.
    ///
    /// # Errors
    /// As [`Record::new`].
    pub fn from_hosts(ip: IpAddr, hosts: &str) -> Result<Self, Error> {
        Self::new(ip, hosts.split_whitespace())
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The line for this record, without newline.
    pub(crate) fn line(&self) -> String {
        format!("{}\t{}", self.ip, self.names.join(" "))
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

/// Whether `name` can be written as one field of a hosts line and read back unchanged.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('#') && !name.chars().any(char::is_whitespace)
}

/// The parts of a record line: the byte span of its address field and its names. `None` for
/// lines that are not records: blank lines, comments, and lines with fewer than two fields.
/// A `#` starts a comment anywhere in the line.
pub(crate) fn fields(line: &str) -> Option<(std::ops::Range<usize>, Names<'_>)> {
    let content = line.split_once('#').map_or(line, |(before, _)| before);
    let start = content.find(|c: char| !c.is_whitespace())?;
    let end = content[start..]
        .find(char::is_whitespace)
        .map_or(content.len(), |len| start + len);
    let mut names = content[end..].split_whitespace().peekable();
    names.peek()?;
    Some((start..end, names))
}

/// The names of a record line.
pub(crate) type Names<'a> = std::iter::Peekable<std::str::SplitWhitespace<'a>>;

/// The label before the first dot: the index key of a name. Every name that
/// [`matches_hostname`] accepts for a hostname shares the hostname's key.
pub(crate) fn key(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// libnetwork's `Update` rule: a line belongs to `hostname` when its first name is exactly
/// `hostname` or `hostname` followed by a dot (its FQDN line), never a longer name with the
/// same prefix.
pub(crate) fn matches_hostname(first_name: &str, hostname: &str) -> bool {
    first_name
        .strip_prefix(hostname)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_the_address_from_the_names_and_ignore_comments() {
        let (ip, names) = fields("  10.0.0.1\tweb web.example # comment").unwrap();
        assert_eq!(ip, 2..10);
        assert_eq!(names.collect::<Vec<_>>(), ["web", "web.example"]);
        assert!(fields("# 10.0.0.1 web").is_none());
        assert!(fields("10.0.0.1").is_none());
        assert!(fields("10.0.0.1 # web").is_none());
        assert!(fields("   ").is_none());
    }

    #[test]
    fn hostname_matching_accepts_the_fqdn_but_not_longer_names() {
        assert!(matches_hostname("prefix", "prefix"));
        assert!(matches_hostname("prefix.example.com", "prefix"));
        assert!(!matches_hostname("prefixAndMore", "prefix"));
        assert!(!matches_hostname("pre", "prefix"));
        assert_eq!(key("prefix.example.com"), key("prefix"));
    }

    #[test]
    fn records_reject_names_that_would_not_read_back() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            Record::new(ip, Vec::<String>::new()),
            Err(Error::NoNames)
        ));
        assert!(matches!(
            Record::new(ip, ["a b"]),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(
            Record::new(ip, ["a#b"]),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(Record::new(ip, [""]), Err(Error::InvalidName(_))));
        assert!(matches!(Record::from_hosts(ip, "  "), Err(Error::NoNames)));
        let record = Record::from_hosts(ip, "web  web.example").unwrap();
        assert_eq!(record.to_string(), "10.0.0.1\tweb web.example");
    }
}
