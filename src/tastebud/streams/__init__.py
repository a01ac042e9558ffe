"""Event ingestion from message streams (NATS JetStream), through the same tracker as HTTP."""

from tastebud.streams.nats import (
    ConsumeStats,
    NatsEventConsumer,
    Rejection,
    StreamUnavailable,
    publish_events,
)

__all__ = ["ConsumeStats", "NatsEventConsumer", "Rejection", "StreamUnavailable", "publish_events"]
