//! Connection table (being written).
