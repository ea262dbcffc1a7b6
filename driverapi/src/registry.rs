//! [`Registry`]: the network and IPAM drivers known to the controller, by name (libnetwork's
//! `drvregistry`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use libnetwork_ipamapi::{Capability as IpamCapability, Ipam};
use tracing::info;

use crate::{Capability, Driver, Error};

/// A network driver as registered.
#[derive(Debug, Clone)]
pub struct RegisteredDriver {
    /// The network type it serves (`bridge`, `host`, a plugin's name, ...).
    pub name: String,
    /// The driver.
    pub driver: Arc<dyn Driver>,
    /// Its capability, as it reported at registration.
    pub capability: Capability,
}

/// An IPAM driver as registered.
#[derive(Debug, Clone)]
pub struct RegisteredIpam {
    /// The name networks ask for it by (`default`, `null`, a plugin's name, ...).
    pub name: String,
    /// The driver.
    pub driver: Arc<dyn Ipam>,
    /// Its capabilities, as it reported at registration.
    pub capability: IpamCapability,
    /// Its default local address space, as it reported at registration.
    pub default_local_address_space: String,
    /// Its default global address space, as it reported at registration.
    pub default_global_address_space: String,
}

/// The network drivers and IPAM drivers, by name.
///
/// Thread safe: lookups take a read lock, registrations a write lock, and no lock is held
/// while a driver or a walk callback runs. A built-in driver cannot be replaced; a plugin can
/// be replaced by a plugin or a built-in driver of the same name.
#[derive(Debug, Default)]
pub struct Registry {
    drivers: RwLock<BTreeMap<String, RegisteredDriver>>,
    ipams: RwLock<BTreeMap<String, RegisteredIpam>>,
}

/// Read access; a panic in another thread cannot leave a map half-updated (every write is
/// one insert), so a poisoned lock is still sound.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write access; see [`read`] about poisoning.
fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Checks a name to register under.
fn check_name(name: &str, context: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(Error::InvalidArgument {
            context: context.to_owned(),
            reason: "name cannot be empty".to_owned(),
        });
    }
    Ok(())
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `driver` for the network type `name`, with the capability it reports
    /// ([`Driver::capability`]). Replaces a plugin registered under that name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a blank name, [`Error::ActiveRegistration`] when a
    /// built-in driver has the name. Nothing changes on error.
    pub fn register_driver(&self, name: &str, driver: Arc<dyn Driver>) -> Result<(), Error> {
        check_name(name, "register network driver")?;
        let capability = driver.capability();
        let built_in = driver.is_built_in();

        let mut drivers = write(&self.drivers);
        let replaced = match drivers.get(name) {
            Some(existing) if existing.driver.is_built_in() => {
                return Err(Error::ActiveRegistration(name.to_owned()));
            }
            Some(_) => true,
            None => false,
        };
        drivers.insert(
            name.to_owned(),
            RegisteredDriver {
                name: name.to_owned(),
                driver,
                capability,
            },
        );
        drop(drivers);

        info!(
            name,
            built_in,
            replaced,
            data_scope = %capability.data_scope,
            connectivity_scope = %capability.connectivity_scope,
            "registered network driver"
        );
        Ok(())
    }

    /// Registers the IPAM driver `driver` under `name`, with the capabilities it reports and
    /// the default address spaces it gives when asked here. Replaces a plugin registered under
    /// that name.
    ///
    /// The driver is asked with no lock held; a remote driver may block on its plugin, so
    /// async callers register it from a blocking task.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a blank name, [`Error::ActiveRegistration`] when a
    /// built-in IPAM driver has the name (checked before and after asking the driver),
    /// [`Error::IpamAddressSpaces`] when the driver cannot tell its default address spaces.
    /// Nothing changes on error.
    pub fn register_ipam_driver(&self, name: &str, driver: Arc<dyn Ipam>) -> Result<(), Error> {
        check_name(name, "register ipam driver")?;
        let ipam_built_in = |ipams: &BTreeMap<String, RegisteredIpam>| {
            ipams.get(name).is_some_and(|e| e.driver.is_built_in())
        };
        if ipam_built_in(&read(&self.ipams)) {
            return Err(Error::ActiveRegistration(name.to_owned()));
        }

        // Ask the driver outside the lock: a plugin answers over the network.
        let (local, global) =
            driver
                .default_address_spaces()
                .map_err(|source| Error::IpamAddressSpaces {
                    name: name.to_owned(),
                    source,
                })?;
        let capability = driver.capabilities();
        let built_in = driver.is_built_in();

        // A built-in driver may have registered under the name meanwhile.
        let mut ipams = write(&self.ipams);
        if ipam_built_in(&ipams) {
            return Err(Error::ActiveRegistration(name.to_owned()));
        }
        let replaced = ipams.contains_key(name);
        ipams.insert(
            name.to_owned(),
            RegisteredIpam {
                name: name.to_owned(),
                driver,
                capability,
                default_local_address_space: local.clone(),
                default_global_address_space: global.clone(),
            },
        );
        drop(ipams);

        info!(
            name,
            built_in,
            replaced,
            local_address_space = %local,
            global_address_space = %global,
            "registered ipam driver"
        );
        Ok(())
    }

    /// The network driver registered for the network type `name`.
    pub fn driver(&self, name: &str) -> Option<RegisteredDriver> {
        read(&self.drivers).get(name).cloned()
    }

    /// The IPAM driver registered under `name`.
    pub fn ipam(&self, name: &str) -> Option<RegisteredIpam> {
        read(&self.ipams).get(name).cloned()
    }

    /// The default local and global address spaces of the IPAM driver `name`, as it reported
    /// them at registration.
    ///
    /// # Errors
    /// [`Error::IpamNotFound`] when no IPAM driver has the name.
    pub fn ipam_default_address_spaces(&self, name: &str) -> Result<(String, String), Error> {
        let ipams = read(&self.ipams);
        let entry = ipams
            .get(name)
            .ok_or_else(|| Error::IpamNotFound(name.to_owned()))?;
        Ok((
            entry.default_local_address_space.clone(),
            entry.default_global_address_space.clone(),
        ))
    }

    /// Every network driver, by name.
    pub fn drivers(&self) -> Vec<RegisteredDriver> {
        read(&self.drivers).values().cloned().collect()
    }

    /// Every IPAM driver, by name.
    pub fn ipams(&self) -> Vec<RegisteredIpam> {
        read(&self.ipams).values().cloned().collect()
    }

    /// Calls `f` with each network driver in name order until it breaks. `f` sees the drivers
    /// registered when the walk started and may use the registry (no lock is held).
    pub fn walk_drivers(&self, mut f: impl FnMut(&RegisteredDriver) -> ControlFlow<()>) {
        for entry in self.drivers() {
            if f(&entry).is_break() {
                break;
            }
        }
    }

    /// Calls `f` with each IPAM driver in name order until it breaks. `f` sees the drivers
    /// registered when the walk started and may use the registry (no lock is held).
    pub fn walk_ipams(&self, mut f: impl FnMut(&RegisteredIpam) -> ControlFlow<()>) {
        for entry in self.ipams() {
            if f(&entry).is_break() {
                break;
            }
        }
    }
}
