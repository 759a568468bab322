"""Bundles (`jetkit bundle`, `bundle verify`), flashing to one device over SSH or to a local device
root (`jetkit flash`: preflight, resumable upload, on-device checks and engine builds, atomic switch,
daemon reload, health check, rollback), `jetkit status` and `rollback`, the device agent, and fleet
rollouts through Ansible.

May import: `edge`, `calibration`. Must not import: torch, `trainer`, `demo`.
"""
