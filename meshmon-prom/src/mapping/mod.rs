//! placeholder
/// x
pub struct Mapper;
/// x
pub struct MonotonicDeltas;
/// x
pub struct ScraperConfig;
