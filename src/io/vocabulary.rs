//! Item ids → columns: the catalogue of a triplet input whose column column holds ids
//! (integers or strings) rather than 0-based indices. Ids get columns in the order they
//! are first seen, after the ones a model already knows; a model keeps the catalogue as
//! its feature names, so later chunks map the same ids to the same columns and bring new
//! ones as new columns. With a fixed catalogue (codes, recommendations), entries of
//! unknown ids are dropped and counted.
//!
//! One catalogue is shared by every epoch of a source (the reader converts one record
//! batch at a time, so the lock is never contended); conversion order is the input order,
//! so the columns are the same on every run and every epoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ItemIds;
use crate::error::{Error, Result};

/// The catalogue (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Vocabulary {
    index: HashMap<String, u32>,
    names: Vec<String>,
    grow: bool,
    unknown: u64,
}

/// A catalogue shared by a source and its converters.
pub(crate) type Shared = Arc<Mutex<Vocabulary>>;

impl Vocabulary {
    /// The catalogue of `ids`; a name listed twice is an error.
    pub(crate) fn new(ids: &ItemIds) -> Result<Shared> {
        let mut index = HashMap::with_capacity(ids.known.len());
        for (j, name) in ids.known.iter().enumerate() {
            if index.insert(name.clone(), j as u32).is_some() {
                return Err(Error::Schema(format!(
                    "item id '{name}' is listed twice in the model's catalogue"
                )));
            }
        }
        Ok(Arc::new(Mutex::new(Self {
            index,
            names: ids.known.clone(),
            grow: ids.grow,
            unknown: 0,
        })))
    }

    /// The column of `id`: a new one when the catalogue grows, `None` (counted) for an
    /// unknown id of a fixed catalogue.
    pub(crate) fn column(&mut self, id: &str) -> Result<Option<u32>> {
        if let Some(&j) = self.index.get(id) {
            return Ok(Some(j));
        }
        if !self.grow {
            self.unknown += 1;
            return Ok(None);
        }
        let j = u32::try_from(self.names.len())
            .ok()
            .filter(|&j| j < u32::MAX)
            .ok_or_else(|| Error::Schema("more than 2^32 - 1 distinct item ids".into()))?;
        self.index.insert(id.to_string(), j);
        self.names.push(id.to_string());
        Ok(Some(j))
    }

    /// Items known so far.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The item id of each column.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Entries dropped because their id was unknown (fixed catalogues).
    pub(crate) fn unknown(&self) -> u64 {
        self.unknown
    }
}

/// Locks a catalogue (a poisoned lock only means another thread panicked mid-lookup;
/// the map is still consistent, as every insertion is one push and one insert).
pub(crate) fn lock(v: &Shared) -> std::sync::MutexGuard<'_, Vocabulary> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_and_fixed_catalogues() {
        let v = Vocabulary::new(&ItemIds::growing(vec!["a".into(), "b".into()])).unwrap();
        let mut g = lock(&v);
        assert_eq!(g.column("b").unwrap(), Some(1));
        assert_eq!(g.column("c").unwrap(), Some(2));
        assert_eq!(g.column("c").unwrap(), Some(2));
        assert_eq!(g.names(), ["a", "b", "c"]);
        drop(g);
        let f = Vocabulary::new(&ItemIds::fixed(vec!["a".into()])).unwrap();
        let mut g = lock(&f);
        assert_eq!(g.column("z").unwrap(), None);
        assert_eq!(g.column("a").unwrap(), Some(0));
        assert_eq!((g.len(), g.unknown()), (1, 1));
        assert!(Vocabulary::new(&ItemIds::fixed(vec!["a".into(), "a".into()])).is_err());
    }
}
