//! Scraping (placeholder).
