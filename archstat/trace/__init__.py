"""Tracing a model on the meta device: the ops it runs (:mod:`.tracer`), what each op is
and costs by shape (:mod:`.ops`), the data flow between them (:mod:`.dataflow`), how
long each activation lives (:mod:`.liveness`), and the machinery that keeps a meta trace
fast (:mod:`.metakernels`) and faithful to the CPU's kernels (:mod:`.cpupath`)."""
