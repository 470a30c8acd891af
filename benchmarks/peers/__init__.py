"""The peers fastraft is measured against, started and stopped by the benchmarks themselves:
etcd (Debian's etcd-server, a 3-member cluster on 127.0.0.1) and PySyncObj (from PyPI, in a
side venv the harness creates, its nodes run by ``pysyncobj_node.py``)."""
