"""The functions' actions over the domain: a contract's request in, a JSON-ready result out.

The one place where requests meet services, so dependencies point one way: ``functions`` -> ``actions``
-> ``contracts`` -> the domain packages (``flow``, ``vaults``, ``audit``, ...); the domain never imports a
contract or an action."""
