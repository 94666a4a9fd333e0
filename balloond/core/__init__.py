"""The pure decision core: snapshot + policies + controller state in, decision out."""
