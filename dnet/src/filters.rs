//! Docker's list filters: the `filters` query parameter (`{"key": {"value": true}}`, or the
//! older `{"key": ["value"]}`), their `key=value` command-line form, and the time values of
//! `until`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::{ApiError, ApiResult};

/// Filters: values by key. Values of one key are alternatives (except `label`, where all must
/// match); different keys must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Parses the `filters` query parameter; none or empty is no filter.
    ///
    /// # Errors
    /// 400 when it is not JSON of either accepted shape.
    pub fn from_query(query: Option<&str>) -> ApiResult<Self> {
        let Some(text) = query.filter(|q| !q.trim().is_empty()) else {
            return Ok(Self::default());
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid filters {text:?}: {e}")))?;
        let bad = || {
            ApiError::bad_request(format!(
                "invalid filters {text:?}: want {{\"key\": {{\"value\": true}}}}"
            ))
        };
        let serde_json::Value::Object(map) = value else {
            return Err(bad());
        };
        let mut out = BTreeMap::new();
        for (key, values) in map {
            let set: BTreeSet<String> = match values {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(v, _)| v)
                    .collect(),
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<ApiResult<_>>()?,
                _ => return Err(bad()),
            };
            out.insert(key, set);
        }
        Ok(Self(out))
    }

    /// Parses `key=value` arguments (`--filter label=a=b`).
    ///
    /// # Errors
    /// An argument without `=`.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut out = Self::default();
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("bad filter {arg:?}: want key=value"))?;
            out.insert(key, value);
        }
        Ok(out)
    }

    /// Adds a value.
    pub fn insert(&mut self, key: &str, value: &str) {
        self.0
            .entry(key.to_owned())
            .or_default()
            .insert(value.to_owned());
    }

    /// Whether there are no filters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The query parameter's value, in the current shape.
    pub fn to_query(&self) -> String {
        let map: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    }

    /// Refuses keys that are not in `allowed`.
    ///
    /// # Errors
    /// 400 naming the first unknown key.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// True when `key` is not filtered, or one of its values satisfies `pred`.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        self.0.get(key).is_none_or(|vs| vs.iter().any(|v| pred(v)))
    }

    /// [`Filters::any`] with a predicate that may refuse a value.
    ///
    /// # Errors
    /// The predicate's error.
    pub fn try_any(&self, key: &str, pred: impl Fn(&str) -> ApiResult<bool>) -> ApiResult<bool> {
        let Some(values) = self.0.get(key) else {
            return Ok(true);
        };
        for v in values {
            if pred(v)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether labels satisfy every `label` filter (`key` or `key=value`) and no `label!`
    /// filter.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        let has = |want: &str| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(want),
        };
        let wanted = self
            .0
            .get("label")
            .is_none_or(|vs| vs.iter().all(|v| has(v)));
        let refused = self
            .0
            .get("label!")
            .is_some_and(|vs| vs.iter().any(|v| has(v)));
        wanted && !refused
    }

    /// The `until` filter as seconds since the epoch: a Unix timestamp, an RFC 3339 time or
    /// date, or a Go duration before now (`24h`, `1h30m`).
    ///
    /// # Errors
    /// 400 for more than one value or a value of none of these forms.
    pub fn until(&self) -> ApiResult<Option<i64>> {
        let Some(values) = self.0.get("until") else {
            return Ok(None);
        };
        let mut values = values.iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::bad_request(
                "more than one until filter specified",
            ));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        parse_time(value, now)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid until filter {value:?}")))
    }
}

/// Whether a creation time (RFC 3339) is after `cutoff` (seconds since the epoch); an
/// unreadable time counts as after, so it is kept.
pub fn created_after(created: &str, cutoff: i64) -> bool {
    rfc3339_secs(created).is_none_or(|t| t > cutoff)
}

/// Parses a time value of the `until` filter; `now` is for durations.
fn parse_time(text: &str, now: i64) -> Option<i64> {
    if let Some(d) = go_duration_secs(text) {
        return Some(now - d);
    }
    if let Some(secs) = text.split('.').next().and_then(|s| s.parse::<i64>().ok())
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Some(secs);
    }
    rfc3339_secs(text).or_else(|| rfc3339_secs(&format!("{text}T00:00:00Z")))
}

/// A Go duration (`1h30m`, `90s`, `10m`) in whole seconds.
fn go_duration_secs(text: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `...+01:00`).
fn rfc3339_secs(text: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (c, sign * (num(oh)? * 3600 + num(om)? * 60))
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.splitn(3, ':');
    let (hour, minute, second) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_query_shapes_parse() {
        let new = Filters::from_query(Some(r#"{"name":{"a":true},"label":{"x=1":true}}"#)).unwrap();
        let old = Filters::from_query(Some(r#"{"name":["a"],"label":["x=1"]}"#)).unwrap();
        assert_eq!(new, old);
        assert!(Filters::from_query(Some("[1]")).is_err());
        assert!(Filters::from_query(Some("{")).is_err());
        assert!(Filters::from_query(None).unwrap().is_empty());
        assert_eq!(Filters::from_query(Some(&new.to_query())).unwrap(), new);
    }

    #[test]
    fn labels_need_every_label_and_no_refused_one() {
        let labels: BTreeMap<String, String> = [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]
        .into();
        let f = |args: &[&str]| {
            Filters::from_args(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
        };
        assert!(f(&["label=a", "label=b=2"]).labels_match(&labels));
        assert!(!f(&["label=a", "label=c"]).labels_match(&labels));
        assert!(!f(&["label=a=2"]).labels_match(&labels));
        assert!(!f(&["label!=b"]).labels_match(&labels));
        assert!(f(&["label!=c"]).labels_match(&labels));
    }

    #[test]
    fn until_takes_timestamps_dates_and_durations() {
        assert_eq!(rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_secs("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            rfc3339_secs("2000-03-01T01:00:00.5+01:00"),
            Some(951_868_800)
        );
        assert_eq!(parse_time("951868800", 0), Some(951_868_800));
        assert_eq!(parse_time("2000-03-01", 0), Some(951_868_800));
        assert_eq!(parse_time("1h30m", 10_000), Some(10_000 - 5400));
        assert_eq!(parse_time("yesterday", 0), None);
        assert!(created_after("2000-03-01T00:00:01Z", 951_868_800));
        assert!(!created_after("2000-02-29T23:59:59.999Z", 951_868_800));
    }
}
