"""Streaming analytics on detections: tracking (ByteTrack), zones and lines, object events and
motion gating. Pure numpy; no torch."""
