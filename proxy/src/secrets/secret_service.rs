//! The freedesktop Secret Service (GNOME Keyring, KWallet, KeePassXC) over
//! the D-Bus session bus, through the pure-Rust `secret-service` crate (zbus):
//! nothing to link against, so `ws` builds without libdbus headers.
//!
//! Items go in the default collection, labelled `ws secret NAME`, with the
//! attributes `application=ws` and `ws-secret=NAME`; secrets cross the bus
//! encrypted (the service's Diffie-Hellman session). A locked collection is
//! reported, not unlocked: an unlock prompt needs a desktop to show it, and
//! would wait forever on a machine without one.
//!
//! The calls block; zbus runs them on a runtime of its own, so they must not
//! be made from inside a tokio runtime (use `spawn_blocking`).

use std::collections::HashMap;

use secret_service::EncryptionType;
use secret_service::blocking::{Collection, SecretService};
use zeroize::Zeroizing;

use super::{Secret, SecretName, SecretStore, StoreError, StoreKind};

const APPLICATION: &str = "ws";
const NAME_ATTRIBUTE: &str = "ws-secret";

pub struct SecretServiceStore {
    service: SecretService<'static>,
    bus: String,
}

impl std::fmt::Debug for SecretServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretServiceStore").field("bus", &self.bus).finish_non_exhaustive()
    }
}

fn failed(op: &'static str) -> impl FnOnce(secret_service::Error) -> StoreError {
    move |e| match e {
        secret_service::Error::Locked => StoreError::Locked,
        e => StoreError::SecretService { op, source: Box::new(e) },
    }
}

impl SecretServiceStore {
    /// Connects to the session bus at `bus` and opens a session with the
    /// Secret Service there; fails if no service answers.
    pub fn connect(bus: &str) -> Result<SecretServiceStore, StoreError> {
        let connect_err =
            |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Connect { bus: bus.to_owned(), source: e };
        let conn = zbus::blocking::connection::Builder::address(bus)
            .and_then(|b| b.build())
            .map_err(|e| connect_err(Box::new(e)))?;
        let service =
            SecretService::connect_with_existing(EncryptionType::Dh, conn).map_err(|e| connect_err(Box::new(e)))?;
        Ok(SecretServiceStore { service, bus: bus.to_owned() })
    }

    fn collection(&self) -> Result<Collection<'_>, StoreError> {
        let collection = self.service.get_default_collection().map_err(failed("finding the default collection"))?;
        if collection.is_locked().map_err(failed("asking whether the default collection is locked"))? {
            return Err(StoreError::Locked);
        }
        Ok(collection)
    }
}

fn attributes(name: &SecretName) -> HashMap<&str, &str> {
    HashMap::from([("application", APPLICATION), (NAME_ATTRIBUTE, name.as_str())])
}

impl SecretStore for SecretServiceStore {
    fn kind(&self) -> StoreKind {
        StoreKind::SecretService
    }

    fn get(&self, name: &SecretName) -> Result<Secret, StoreError> {
        let collection = self.collection()?;
        let items = collection.search_items(attributes(name)).map_err(failed("searching"))?;
        let item = items.first().ok_or_else(|| StoreError::NotFound { store: self.kind(), name: name.clone() })?;
        let value = item.get_secret().map_err(failed("reading an item"))?;
        Ok(Secret(Zeroizing::new(value)))
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        let collection = self.collection()?;
        let label = format!("ws secret {name}");
        collection
            .create_item(&label, attributes(name), value.expose(), true, "text/plain")
            .map_err(failed("creating an item"))?;
        Ok(())
    }

    fn remove(&self, name: &SecretName) -> Result<(), StoreError> {
        let collection = self.collection()?;
        let items = collection.search_items(attributes(name)).map_err(failed("searching"))?;
        if items.is_empty() {
            return Err(StoreError::NotFound { store: self.kind(), name: name.clone() });
        }
        for item in items {
            item.delete().map_err(failed("deleting an item"))?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<SecretName>, StoreError> {
        let collection = self.collection()?;
        let items =
            collection.search_items(HashMap::from([("application", APPLICATION)])).map_err(failed("searching"))?;
        let mut names = Vec::new();
        for item in items {
            let attrs = item.get_attributes().map_err(failed("reading an item's attributes"))?;
            if let Some(name) = attrs.get(NAME_ATTRIBUTE).and_then(|n| SecretName::new(n).ok()) {
                names.push(name);
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}
