// The `exec` dialect: granular operators that machines run, with their placement.
//
// Source of truth for the dialect, like agent.irdl.mlir (whose header explains the IRDL
// constraints that shape both files). Every op carries its placement: `device` (a device id of
// the cluster, "" before placement), `predicted_ms` and `usd` (predicted latency and cost per run).
// Value types are the agent dialect's five plus `tokens` (token ids) and `kv` (a sequence's KV
// cache, the handle a decode continues from).
irdl.dialect @exec {
  irdl.type @text
  irdl.type @json
  irdl.type @vec
  irdl.type @docs
  irdl.type @list
  irdl.type @tokens
  irdl.type @kv

  // A workflow input.
  irdl.operation @input {
    %a_node = irdl.base "#builtin.string"
    %a_name = irdl.base "#builtin.string"
    %a_max_len = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "name" = %a_name, "max_len" = %a_max_len, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %r_out_text = irdl.base @exec::@text
    %r_out_json = irdl.base @exec::@json
    %r_out_list = irdl.base @exec::@list
    %r_out = irdl.any_of(%r_out_text, %r_out_json, %r_out_list)
    irdl.results(out: %r_out)
  }

  // Renders a template (or, with a model, chat messages through its chat template) to text.
  // `est_tokens` is the rendered size in tokens the cost model assumes.
  irdl.operation @render {
    %a_node = irdl.base "#builtin.string"
    %a_template = irdl.base "#builtin.string"
    %a_messages = irdl.base "#builtin.array"
    %a_model = irdl.base "#builtin.string"
    %a_est_tokens = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "template" = %a_template, "messages" = %a_messages, "model" = %a_model, "est_tokens" = %a_est_tokens, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %g_text = irdl.base @exec::@text
    %g_json = irdl.base @exec::@json
    %g_vec = irdl.base @exec::@vec
    %g_docs = irdl.base @exec::@docs
    %g_list = irdl.base @exec::@list
    irdl.operands(text_args: variadic %g_text, json_args: variadic %g_json, vec_args: variadic %g_vec, docs_args: variadic %g_docs, list_args: variadic %g_list)
    %r_out = irdl.base @exec::@text
    irdl.results(out: %r_out)
  }

  // Text to token ids with a model's tokenizer.
  irdl.operation @tokenize {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_est_tokens = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "est_tokens" = %a_est_tokens, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_text = irdl.base @exec::@text
    irdl.operands(text: %o_text)
    %r_out = irdl.base @exec::@tokens
    irdl.results(out: %r_out)
  }

  // A prompt prefix shared by several prefills: `tokens` tokens (estimated), its static text and
  // the name prefills refer to it by; `uses` is how many prefills per run read it (a map body's
  // prefix is read once per element). Retained while any consumer of the run may still read it.
  irdl.operation @kv_prefix {
    %a_name = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_tokens = irdl.base "#builtin.integer"
    %a_text = irdl.base "#builtin.string"
    %a_consumers = irdl.base "#builtin.array"
    %a_uses = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"name" = %a_name, "model" = %a_model, "tokens" = %a_tokens, "text" = %a_text, "consumers" = %a_consumers, "uses" = %a_uses, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
  }

  // Runs the prompt through the model, producing the KV cache. `prefix` names a shared
  // exec.kv_prefix by its name ("": none) whose `prefix_tokens` tokens are reused, not recomputed;
  // `batch` groups ops that may run in one forward pass ("": none).
  irdl.operation @prefill {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_est_tokens = irdl.base "#builtin.integer"
    %a_prefix = irdl.base "#builtin.string"
    %a_prefix_tokens = irdl.base "#builtin.integer"
    %a_batch = irdl.base "#builtin.string"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "est_tokens" = %a_est_tokens, "prefix" = %a_prefix, "prefix_tokens" = %a_prefix_tokens, "batch" = %a_batch, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_tokens = irdl.base @exec::@tokens
    irdl.operands(tokens: %o_tokens)
    %r_kv = irdl.base @exec::@kv
    irdl.results(kv: %r_kv)
  }

  // Generates up to `max_tokens` tokens from a KV cache; `est_tokens` is the expected count.
  irdl.operation @decode {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_max_tokens = irdl.base "#builtin.integer"
    %a_est_tokens = irdl.base "#builtin.integer"
    %a_temperature = irdl.base "#builtin.float"
    %a_top_p = irdl.base "#builtin.float"
    %a_top_k = irdl.base "#builtin.integer"
    %a_seed = irdl.base "#builtin.integer"
    %a_stop = irdl.base "#builtin.array"
    %a_batch = irdl.base "#builtin.string"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    %a_constraint = irdl.base "#builtin.string"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "max_tokens" = %a_max_tokens, "est_tokens" = %a_est_tokens, "temperature" = %a_temperature, "top_p" = %a_top_p, "top_k" = %a_top_k, "seed" = %a_seed, "stop" = %a_stop, "batch" = %a_batch, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd, "constraint" = %a_constraint}
    %o_kv = irdl.base @exec::@kv
    irdl.operands(kv: %o_kv)
    %r_out = irdl.base @exec::@tokens
    irdl.results(out: %r_out)
  }

  // Token ids back to text, parsed as JSON when `output` is "json".
  irdl.operation @detokenize {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_output = irdl.base "#builtin.string"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "output" = %a_output, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_tokens = irdl.base @exec::@tokens
    irdl.operands(tokens: %o_tokens)
    %r_out_text = irdl.base @exec::@text
    %r_out_json = irdl.base @exec::@json
    %r_out = irdl.any_of(%r_out_text, %r_out_json)
    irdl.results(out: %r_out)
  }

  // Embeds text with an embedding model.
  irdl.operation @embed {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_est_tokens = irdl.base "#builtin.integer"
    %a_batch = irdl.base "#builtin.string"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "est_tokens" = %a_est_tokens, "batch" = %a_batch, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_text = irdl.base @exec::@text
    irdl.operands(text: %o_text)
    %r_out = irdl.base @exec::@vec
    irdl.results(out: %r_out)
  }

  // The `k` nearest documents of an index to a vector.
  irdl.operation @knn {
    %a_node = irdl.base "#builtin.string"
    %a_index = irdl.base "#builtin.string"
    %a_k = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "index" = %a_index, "k" = %a_k, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_query = irdl.base @exec::@vec
    irdl.operands(query: %o_query)
    %r_out = irdl.base @exec::@docs
    irdl.results(out: %r_out)
  }

  // A tool call (arguments as in agent.tool).
  irdl.operation @tool {
    %a_node = irdl.base "#builtin.string"
    %a_tool = irdl.base "#builtin.string"
    %a_args = irdl.base "#builtin.dictionary"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "tool" = %a_tool, "args" = %a_args, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %g_text = irdl.base @exec::@text
    %g_json = irdl.base @exec::@json
    %g_vec = irdl.base @exec::@vec
    %g_docs = irdl.base @exec::@docs
    %g_list = irdl.base @exec::@list
    irdl.operands(text_args: variadic %g_text, json_args: variadic %g_json, vec_args: variadic %g_vec, docs_args: variadic %g_docs, list_args: variadic %g_list)
    %r_out_json = irdl.base @exec::@json
    %r_out_text = irdl.base @exec::@text
    %r_out = irdl.any_of(%r_out_json, %r_out_text)
    irdl.results(out: %r_out)
  }

  // Extracts from or builds JSON (as agent.json_op).
  irdl.operation @json_op {
    %a_node = irdl.base "#builtin.string"
    %a_mode = irdl.base "#builtin.string"
    %a_template = irdl.base "#builtin.string"
    %a_path = irdl.base "#builtin.string"
    %a_fields = irdl.base "#builtin.dictionary"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "mode" = %a_mode, "template" = %a_template, "path" = %a_path, "fields" = %a_fields, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %g_text = irdl.base @exec::@text
    %g_json = irdl.base @exec::@json
    %g_vec = irdl.base @exec::@vec
    %g_docs = irdl.base @exec::@docs
    %g_list = irdl.base @exec::@list
    irdl.operands(text_args: variadic %g_text, json_args: variadic %g_json, vec_args: variadic %g_vec, docs_args: variadic %g_docs, list_args: variadic %g_list)
    %r_out = irdl.base @exec::@json
    irdl.results(out: %r_out)
  }

  // Moves a value or a KV cache between devices: `from` to the op's `device`, `bytes` estimated.
  irdl.operation @transfer {
    %a_node = irdl.base "#builtin.string"
    %a_from = irdl.base "#builtin.string"
    %a_bytes = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "from" = %a_from, "bytes" = %a_bytes, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_value_text = irdl.base @exec::@text
    %o_value_json = irdl.base @exec::@json
    %o_value_vec = irdl.base @exec::@vec
    %o_value_docs = irdl.base @exec::@docs
    %o_value_list = irdl.base @exec::@list
    %o_value_tokens = irdl.base @exec::@tokens
    %o_value_kv = irdl.base @exec::@kv
    %o_value = irdl.any_of(%o_value_text, %o_value_json, %o_value_vec, %o_value_docs, %o_value_list, %o_value_tokens, %o_value_kv)
    irdl.operands(value: %o_value)
    %r_out_text = irdl.base @exec::@text
    %r_out_json = irdl.base @exec::@json
    %r_out_vec = irdl.base @exec::@vec
    %r_out_docs = irdl.base @exec::@docs
    %r_out_list = irdl.base @exec::@list
    %r_out_tokens = irdl.base @exec::@tokens
    %r_out_kv = irdl.base @exec::@kv
    %r_out = irdl.any_of(%r_out_text, %r_out_json, %r_out_vec, %r_out_docs, %r_out_list, %r_out_tokens, %r_out_kv)
    irdl.results(out: %r_out)
  }

  // As agent.map.
  irdl.operation @map {
    %a_node = irdl.base "#builtin.string"
    %a_body = irdl.base "#builtin.symbol_ref"
    %a_item = irdl.base "#builtin.string"
    %a_max_concurrency = irdl.base "#builtin.integer"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "body" = %a_body, "item" = %a_item, "max_concurrency" = %a_max_concurrency, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %o_over_list = irdl.base @exec::@list
    %o_over_docs = irdl.base @exec::@docs
    %o_over_json = irdl.base @exec::@json
    %o_over = irdl.any_of(%o_over_list, %o_over_docs, %o_over_json)
    %g_text = irdl.base @exec::@text
    %g_json = irdl.base @exec::@json
    %g_vec = irdl.base @exec::@vec
    %g_docs = irdl.base @exec::@docs
    %g_list = irdl.base @exec::@list
    irdl.operands(over: %o_over, text_args: variadic %g_text, json_args: variadic %g_json, vec_args: variadic %g_vec, docs_args: variadic %g_docs, list_args: variadic %g_list)
    %r_out = irdl.base @exec::@list
    irdl.results(out: %r_out)
  }

  // As agent.branch.
  irdl.operation @branch {
    %a_node = irdl.base "#builtin.string"
    %a_conditions = irdl.base "#builtin.array"
    %a_cases = irdl.base "#builtin.array"
    %a_default = irdl.base "#builtin.symbol_ref"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "conditions" = %a_conditions, "cases" = %a_cases, "default" = %a_default, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %g_text = irdl.base @exec::@text
    %g_json = irdl.base @exec::@json
    %g_vec = irdl.base @exec::@vec
    %g_docs = irdl.base @exec::@docs
    %g_list = irdl.base @exec::@list
    irdl.operands(text_args: variadic %g_text, json_args: variadic %g_json, vec_args: variadic %g_vec, docs_args: variadic %g_docs, list_args: variadic %g_list)
    %r_out_text = irdl.base @exec::@text
    %r_out_json = irdl.base @exec::@json
    %r_out_vec = irdl.base @exec::@vec
    %r_out_docs = irdl.base @exec::@docs
    %r_out_list = irdl.base @exec::@list
    %r_out = irdl.any_of(%r_out_text, %r_out_json, %r_out_vec, %r_out_docs, %r_out_list)
    irdl.results(out: %r_out)
  }

  // As agent.loop.
  irdl.operation @loop {
    %a_node = irdl.base "#builtin.string"
    %a_body = irdl.base "#builtin.symbol_ref"
    %a_max_iters = irdl.base "#builtin.integer"
    %a_carry = irdl.base "#builtin.array"
    %a_carry_operands = irdl.base "#builtin.array"
    %a_until = irdl.base "#builtin.string"
    %a_device = irdl.base "#builtin.string"
    %a_predicted_ms = irdl.base "#builtin.float"
    %a_usd = irdl.base "#builtin.float"
    irdl.attributes {"node" = %a_node, "body" = %a_body, "max_iters" = %a_max_iters, "carry" = %a_carry, "carry_operands" = %a_carry_operands, "until" = %a_until, "device" = %a_device, "predicted_ms" = %a_predicted_ms, "usd" = %a_usd}
    %g_text = irdl.base @exec::@text
    %g_json = irdl.base @exec::@json
    %g_vec = irdl.base @exec::@vec
    %g_docs = irdl.base @exec::@docs
    %g_list = irdl.base @exec::@list
    irdl.operands(text_args: variadic %g_text, json_args: variadic %g_json, vec_args: variadic %g_vec, docs_args: variadic %g_docs, list_args: variadic %g_list)
    %r_out_text = irdl.base @exec::@text
    %r_out_json = irdl.base @exec::@json
    %r_out_vec = irdl.base @exec::@vec
    %r_out_docs = irdl.base @exec::@docs
    %r_out_list = irdl.base @exec::@list
    %r_out = irdl.any_of(%r_out_text, %r_out_json, %r_out_vec, %r_out_docs, %r_out_list)
    irdl.results(out: %r_out)
  }

  // A named workflow result.
  irdl.operation @output {
    %a_name = irdl.base "#builtin.string"
    irdl.attributes {"name" = %a_name}
    %o_text = irdl.base @exec::@text
    %o_json = irdl.base @exec::@json
    %o_vec = irdl.base @exec::@vec
    %o_docs = irdl.base @exec::@docs
    %o_list = irdl.base @exec::@list
    %o_value = irdl.any_of(%o_text, %o_json, %o_vec, %o_docs, %o_list)
    irdl.operands(value: %o_value)
  }
}
