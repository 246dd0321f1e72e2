//! Kafka-side actions of the engine.
