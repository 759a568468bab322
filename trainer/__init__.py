"""Host-side training and distillation (torch). Built in a later issue; see DESIGN.md."""
