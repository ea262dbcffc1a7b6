//! The kernel's dynamic port range: the crate's only I/O, kept apart from the allocator.

use std::path::Path;

use crate::{Error, PortRange};

/// Where Linux publishes the range of ports it hands to `bind(port 0)`.
pub const PORT_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Parses the content of `ip_local_port_range`: two port numbers separated by whitespace (the
/// kernel uses a tab), optionally followed by a newline.
///
/// # Errors
/// [`Error::MalformedPortRange`] when the text is not two numbers forming a valid
/// [`PortRange`].
pub fn parse_port_range(text: &str) -> Result<PortRange, Error> {
    let malformed = || Error::MalformedPortRange(text.to_owned());
    let mut fields = text.split_whitespace();
    let (Some(start), Some(end), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed());
    };
    let start: u16 = start.parse().map_err(|_| malformed())?;
    let end: u16 = end.parse().map_err(|_| malformed())?;
    PortRange::new(start, end).map_err(|_| malformed())
}

/// Reads the dynamic range from the file at `path`, falling back to
/// [`PortRange::DEFAULT_DYNAMIC`] when it cannot be read or parsed.
pub fn read_port_range(path: &Path) -> PortRange {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| parse_port_range(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(range) => {
            tracing::debug!(path = %path.display(), %range, "read dynamic port range");
            range
        }
        Err(error) => {
            let range = PortRange::DEFAULT_DYNAMIC;
            tracing::info!(path = %path.display(), %error, %range, "using default dynamic port range");
            range
        }
    }
}

/// The kernel's dynamic range from [`PORT_RANGE_PATH`], or the default when unreadable.
pub fn system_port_range() -> PortRange {
    read_port_range(Path::new(PORT_RANGE_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let range = parse_port_range("32768\t60999\n").unwrap();
        assert_eq!((range.start(), range.end()), (32768, 60999));
    }

    #[test]
    fn rejects_malformed_ranges() {
        for text in ["", "1", "1 2 3", "a 2", "0 10", "20 10", "1 70000", "-1 5"] {
            let err = parse_port_range(text).unwrap_err();
            assert!(
                matches!(err, Error::MalformedPortRange(_)),
                "{text:?}: {err}"
            );
            assert_eq!(err.kind(), libnetwork_types::ErrorKind::BadRequest);
        }
    }

    #[test]
    fn reads_the_range_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ip_local_port_range");
        std::fs::write(&path, "10000\t10010\n").unwrap();
        assert_eq!(
            read_port_range(&path),
            PortRange::new(10000, 10010).unwrap()
        );
    }

    #[test]
    fn falls_back_to_the_default_when_the_file_is_missing_or_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(read_port_range(&missing), PortRange::DEFAULT_DYNAMIC);
        let malformed = dir.path().join("malformed");
        std::fs::write(&malformed, "garbage\n").unwrap();
        assert_eq!(read_port_range(&malformed), PortRange::DEFAULT_DYNAMIC);
    }
}
