//! libnetwork's numeric codes of [`EventType`] and [`ObjectType`] (as remote plugins and
//! networkdb payloads carry them), and the usual [`Capability`] values.

use crate::{Capability, EventType, ObjectType, Scope};

impl Capability {
    /// Data and connectivity on this host only (bridge, host, null).
    pub const LOCAL: Self = Self {
        data_scope: Scope::Local,
        connectivity_scope: Scope::Local,
    };

    /// Data and connectivity across the cluster (overlay).
    pub const GLOBAL: Self = Self {
        data_scope: Scope::Global,
        connectivity_scope: Scope::Global,
    };
}

impl EventType {
    /// libnetwork's code: `Create` 1, `Update` 2, `Delete` 3.
    pub fn code(&self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Update => 2,
            Self::Delete => 3,
        }
    }

    /// The event type of a code; `None` for anything but 1, 2 and 3.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Create),
            2 => Some(Self::Update),
            3 => Some(Self::Delete),
            _ => None,
        }
    }
}

impl ObjectType {
    /// libnetwork's code: `Endpoint` 1, `Network` 2, `Opaque` 3.
    pub fn code(self) -> u8 {
        match self {
            Self::Endpoint => 1,
            Self::Network => 2,
            Self::Opaque => 3,
        }
    }

    /// The object type of a code; `None` for anything but 1, 2 and 3 (libnetwork's
    /// `IsValidType`).
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Endpoint),
            2 => Some(Self::Network),
            3 => Some(Self::Opaque),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_keep_libnetworks_codes_and_reject_others() {
        let all = [EventType::Create, EventType::Update, EventType::Delete];
        assert_eq!(
            all.iter().map(EventType::code).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for e in all {
            assert_eq!(EventType::from_code(e.code()), Some(e));
        }
        assert_eq!(EventType::from_code(0), None);
        assert_eq!(EventType::from_code(4), None);
    }

    #[test]
    fn object_types_keep_libnetworks_codes_and_reject_others() {
        let all = [
            ObjectType::Endpoint,
            ObjectType::Network,
            ObjectType::Opaque,
        ];
        assert_eq!(all.map(ObjectType::code), [1, 2, 3]);
        for o in all {
            assert_eq!(ObjectType::from_code(o.code()), Some(o));
        }
        assert_eq!(ObjectType::from_code(0), None);
        assert_eq!(ObjectType::from_code(4), None);
    }

    #[test]
    fn capability_constants_have_matching_scopes() {
        assert_eq!(Capability::LOCAL.data_scope, Scope::Local);
        assert_eq!(Capability::LOCAL.connectivity_scope, Scope::Local);
        assert_eq!(Capability::GLOBAL.data_scope, Scope::Global);
        assert_eq!(Capability::GLOBAL.connectivity_scope, Scope::Global);
    }
}
