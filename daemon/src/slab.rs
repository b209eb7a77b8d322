//! A table of fixed capacity, set at start-up, with generation-checked
//! handles: a handle to a freed slot never reaches the slot's next tenant.

/// A handle to a table entry. It is also the payload of an epoll token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ref {
    pub index: u32,
    pub generation: u32,
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

pub struct Slab<T> {
    /// The slots used so far; never more than `capacity`, so the vector
    /// never grows past the room reserved at start-up.
    slots: Vec<Slot<T>>,
    capacity: usize,
    len: usize,
}

impl<T> Slab<T> {
    /// A table that will never hold more than `capacity` entries. The room
    /// for all of them is allocated once, when the first entry comes; a
    /// slot is written (and its memory touched, so counted in the daemon's
    /// resident set) only when an entry first needs it. An idle daemon
    /// with room for 64 containers holds the pages of the few it has, and
    /// none for a table it has not used.
    pub fn with_capacity(capacity: usize) -> Self {
        Slab {
            slots: Vec::new(),
            capacity,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Stores `value`; when the table is full it is handed back. A freed
    /// slot is used again before a new one is taken.
    pub fn insert(&mut self, value: T) -> Result<Ref, T> {
        let free = self.slots.iter().position(|s| s.value.is_none());
        let index = match free {
            Some(i) => i,
            None if self.slots.len() < self.capacity => {
                // The whole room at once: the vector never grows again.
                if self.slots.capacity() == 0 {
                    self.slots.reserve_exact(self.capacity);
                }
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                self.slots.len() - 1
            }
            None => return Err(value),
        };
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        slot.value = Some(value);
        self.len += 1;
        Ok(Ref {
            index: index as u32,
            generation: slot.generation,
        })
    }

    pub fn get(&self, r: Ref) -> Option<&T> {
        let slot = self.slots.get(r.index as usize)?;
        (slot.generation == r.generation).then_some(slot.value.as_ref()?)
    }

    pub fn get_mut(&mut self, r: Ref) -> Option<&mut T> {
        let slot = self.slots.get_mut(r.index as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        slot.value.as_mut()
    }

    pub fn remove(&mut self, r: Ref) -> Option<T> {
        let slot = self.slots.get_mut(r.index as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        let value = slot.value.take()?;
        self.len -= 1;
        Some(value)
    }

    /// Live entries with their handles, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Ref, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let r = Ref {
                index: i as u32,
                generation: s.generation,
            };
            Some((r, s.value.as_ref()?))
        })
    }

    /// Handles of the live entries for which `pred` holds.
    pub fn refs_where(&self, mut pred: impl FnMut(&T) -> bool) -> Vec<Ref> {
        self.iter()
            .filter(|(_, v)| pred(v))
            .map(|(r, _)| r)
            .collect()
    }
}

/// Sorts a short list (directory entries, a container's processes) by
/// insertion. The lists are small, and each copy of std's sort for another
/// element type would cost the binary more than this whole function.
pub fn sort_small<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && less(&v[j], &v[j - 1]) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_small_lists() {
        let mut v = vec![5, 1, 4, 1, 3];
        sort_small(&mut v, |a, b| a < b);
        assert_eq!(v, [1, 1, 3, 4, 5]);
        let mut e: Vec<u8> = Vec::new();
        sort_small(&mut e, |a, b| a > b);
        assert!(e.is_empty());
    }

    #[test]
    fn capacity_is_fixed() {
        let mut s = Slab::with_capacity(2);
        assert_eq!(
            s.slots.capacity(),
            0,
            "nothing is allocated before it is used"
        );
        let a = s.insert("a").unwrap();
        assert_eq!(s.slots.capacity(), 2, "then the whole room, once");
        let room = s.slots.as_ptr();
        assert_eq!(s.slots.len(), 1, "no slot is written before it is used");
        let _b = s.insert("b").unwrap();
        assert!(s.is_full());
        assert_eq!(room, s.slots.as_ptr(), "the room reserved is never moved");
        assert_eq!(s.insert("c"), Err("c"));
        assert_eq!(s.remove(a), Some("a"));
        assert!(s.insert("c").is_ok());
        assert_eq!(s.len(), 2);
        assert_eq!(s.slots.len(), 2, "a freed slot is used again");
    }

    #[test]
    fn stale_handles_miss() {
        let mut s = Slab::with_capacity(1);
        let old = s.insert(1).unwrap();
        s.remove(old);
        let new = s.insert(2).unwrap();
        assert_eq!(old.index, new.index);
        assert_eq!(s.get(old), None);
        assert_eq!(s.get_mut(old), None);
        assert_eq!(s.remove(old), None);
        assert_eq!(s.get(new), Some(&2));
    }

    #[test]
    fn iterates_live_entries() {
        let mut s = Slab::with_capacity(3);
        let a = s.insert(10).unwrap();
        let b = s.insert(20).unwrap();
        s.insert(30).unwrap();
        s.remove(b);
        let seen: Vec<_> = s.iter().map(|(_, v)| *v).collect();
        assert_eq!(seen, [10, 30]);
        assert_eq!(s.refs_where(|v| *v > 15).len(), 1);
        assert_eq!(s.iter().next().unwrap().0, a);
    }
}
