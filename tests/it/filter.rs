//! Transparent sealing through Git: the filter, diff and merge drivers.
