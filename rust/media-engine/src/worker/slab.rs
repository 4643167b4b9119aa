//! Vec-backed slab: stable keys for legs, reused after removal.

pub(crate) struct Slab<T> {
    pub entries: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    pub fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
    pub fn insert(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(k) => {
                self.entries[k] = Some(v);
                k
            }
            None => {
                self.entries.push(Some(v));
                self.entries.len() - 1
            }
        }
    }
    pub fn remove(&mut self, k: usize) -> Option<T> {
        let v = self.entries.get_mut(k)?.take();
        if v.is_some() {
            self.free.push(k);
        }
        v
    }
    pub fn get(&self, k: usize) -> Option<&T> {
        self.entries.get(k)?.as_ref()
    }
    pub fn get_mut(&mut self, k: usize) -> Option<&mut T> {
        self.entries.get_mut(k)?.as_mut()
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().filter_map(|e| e.as_mut())
    }
}
