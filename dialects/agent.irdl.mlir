// The `agent` dialect: one op per workflow node, as the author wrote it.
//
// Source of truth for the dialect; the compiler and the runtime load it at run time
// (melior::utility::load_irdl_dialects) and stock tools read it with
// `mlir-opt-22 --irdl-file=dialects/agent.irdl.mlir`.
//
// IRDL facts this file is shaped by (checked with mlir-opt-22):
// - a constraint value binds on first use: two attributes or two variadic operands sharing one
//   `%c` must be equal, so every attribute has its own constraint op, and template operands
//   come in one variadic group per value type (text_args, json_args, vec_args, docs_args, list_args) with
//   `operandSegmentSizes`; `${N}` in a template names the op's N-th operand overall;
// - IRDL cannot declare traits or regions, so map/branch/loop bodies are private func.func
//   symbols named by `#builtin.symbol_ref` attributes.
irdl.dialect @agent {
  irdl.type @text
  irdl.type @json
  irdl.type @vec
  irdl.type @docs
  irdl.type @list

  // A workflow input. `max_len` is the declared size in tokens (0: undeclared).
  irdl.operation @input {
    %a_node = irdl.base "#builtin.string"
    %a_name = irdl.base "#builtin.string"
    %a_max_len = irdl.base "#builtin.integer"
    irdl.attributes {"node" = %a_node, "name" = %a_name, "max_len" = %a_max_len}
    %r_text = irdl.base @agent::@text
    %r_json = irdl.base @agent::@json
    %r_list = irdl.base @agent::@list
    %r_any = irdl.any_of(%r_text, %r_json, %r_list)
    irdl.results(out: %r_any)
  }

  // An LLM call. `messages` is an array of {role, content} templates; mode "prompt" has one message with role "prompt" sent without a chat template.
  irdl.operation @llm {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_mode = irdl.base "#builtin.string"
    %a_messages = irdl.base "#builtin.array"
    %a_max_tokens = irdl.base "#builtin.integer"
    %a_temperature = irdl.base "#builtin.float"
    %a_top_p = irdl.base "#builtin.float"
    %a_top_k = irdl.base "#builtin.integer"
    %a_seed = irdl.base "#builtin.integer"
    %a_stop = irdl.base "#builtin.array"
    %a_output = irdl.base "#builtin.string"
    %a_constraint = irdl.base "#builtin.string"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "mode" = %a_mode, "messages" = %a_messages, "max_tokens" = %a_max_tokens, "temperature" = %a_temperature, "top_p" = %a_top_p, "top_k" = %a_top_k, "seed" = %a_seed, "stop" = %a_stop, "output" = %a_output, "constraint" = %a_constraint}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_text = irdl.base @agent::@text
    %r_json = irdl.base @agent::@json
    %r_any = irdl.any_of(%r_text, %r_json)
    irdl.results(out: %r_any)
  }

  // Embeds the rendered template with an embedding model.
  irdl.operation @embed {
    %a_node = irdl.base "#builtin.string"
    %a_model = irdl.base "#builtin.string"
    %a_template = irdl.base "#builtin.string"
    irdl.attributes {"node" = %a_node, "model" = %a_model, "template" = %a_template}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_vec = irdl.base @agent::@vec
    irdl.results(out: %r_vec)
  }

  // k nearest documents of an index; the query is a rendered template, or one !agent.vec operand used as is.
  irdl.operation @retrieve {
    %a_node = irdl.base "#builtin.string"
    %a_index = irdl.base "#builtin.string"
    %a_k = irdl.base "#builtin.integer"
    %a_template = irdl.base "#builtin.string"
    irdl.attributes {"node" = %a_node, "index" = %a_index, "k" = %a_k, "template" = %a_template}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_docs = irdl.base @agent::@docs
    irdl.results(out: %r_docs)
  }

  // A tool call. `args` maps each argument to a template string or a literal.
  irdl.operation @tool {
    %a_node = irdl.base "#builtin.string"
    %a_tool = irdl.base "#builtin.string"
    %a_args = irdl.base "#builtin.dictionary"
    irdl.attributes {"node" = %a_node, "tool" = %a_tool, "args" = %a_args}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_json = irdl.base @agent::@json
    %r_text = irdl.base @agent::@text
    %r_any = irdl.any_of(%r_json, %r_text)
    irdl.results(out: %r_any)
  }

  // A prompt or text template.
  irdl.operation @render {
    %a_node = irdl.base "#builtin.string"
    %a_template = irdl.base "#builtin.string"
    irdl.attributes {"node" = %a_node, "template" = %a_template}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_text = irdl.base @agent::@text
    irdl.results(out: %r_text)
  }

  // Named json_op because IRDL types and ops share one symbol table and !agent.json is the type.
  // mode "extract": parse the rendered `template` as JSON and take `path` (dot-separated, empty for all); mode "object": build an object from `fields`.
  irdl.operation @json_op {
    %a_node = irdl.base "#builtin.string"
    %a_mode = irdl.base "#builtin.string"
    %a_template = irdl.base "#builtin.string"
    %a_path = irdl.base "#builtin.string"
    %a_fields = irdl.base "#builtin.dictionary"
    irdl.attributes {"node" = %a_node, "mode" = %a_mode, "template" = %a_template, "path" = %a_path, "fields" = %a_fields}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_json = irdl.base @agent::@json
    irdl.results(out: %r_json)
  }

  // Runs `body` once per element of `over`; the body takes the element, then every other operand. Results in order.
  irdl.operation @map {
    %a_node = irdl.base "#builtin.string"
    %a_body = irdl.base "#builtin.symbol_ref"
    %a_item = irdl.base "#builtin.string"
    %a_max_concurrency = irdl.base "#builtin.integer"
    irdl.attributes {"node" = %a_node, "body" = %a_body, "item" = %a_item, "max_concurrency" = %a_max_concurrency}
    %o_over_list = irdl.base @agent::@list
    %o_over_docs = irdl.base @agent::@docs
    %o_over_json = irdl.base @agent::@json
    %o_over = irdl.any_of(%o_over_list, %o_over_docs, %o_over_json)
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(over: %o_over, text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_list = irdl.base @agent::@list
    irdl.results(out: %r_list)
  }

  // Evaluates `conditions` in order over the operands ($N) and calls the first matching case body, else `default`; bodies take every operand.
  irdl.operation @branch {
    %a_node = irdl.base "#builtin.string"
    %a_conditions = irdl.base "#builtin.array"
    %a_cases = irdl.base "#builtin.array"
    %a_default = irdl.base "#builtin.symbol_ref"
    irdl.attributes {"node" = %a_node, "conditions" = %a_conditions, "cases" = %a_cases, "default" = %a_default}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_text = irdl.base @agent::@text
    %r_json = irdl.base @agent::@json
    %r_vec = irdl.base @agent::@vec
    %r_docs = irdl.base @agent::@docs
    %r_list = irdl.base @agent::@list
    %r_any = irdl.any_of(%r_text, %r_json, %r_vec, %r_docs, %r_list)
    irdl.results(out: %r_any)
  }

  // Calls `body` at most `max_iters` times. Operands `carry_operands` give the initial carried values; the body takes the carried values then every operand, and returns the next carried values, the output, then the values `until` reads ($N: the N-th of those). Stops when `until` holds.
  irdl.operation @loop {
    %a_node = irdl.base "#builtin.string"
    %a_body = irdl.base "#builtin.symbol_ref"
    %a_max_iters = irdl.base "#builtin.integer"
    %a_carry = irdl.base "#builtin.array"
    %a_carry_operands = irdl.base "#builtin.array"
    %a_until = irdl.base "#builtin.string"
    irdl.attributes {"node" = %a_node, "body" = %a_body, "max_iters" = %a_max_iters, "carry" = %a_carry, "carry_operands" = %a_carry_operands, "until" = %a_until}
    %text_in = irdl.base @agent::@text
    %json_in = irdl.base @agent::@json
    %vec_in = irdl.base @agent::@vec
    %docs_in = irdl.base @agent::@docs
    %list_in = irdl.base @agent::@list
    irdl.operands(text_args: variadic %text_in, json_args: variadic %json_in, vec_args: variadic %vec_in, docs_args: variadic %docs_in, list_args: variadic %list_in)
    %r_text = irdl.base @agent::@text
    %r_json = irdl.base @agent::@json
    %r_vec = irdl.base @agent::@vec
    %r_docs = irdl.base @agent::@docs
    %r_list = irdl.base @agent::@list
    %r_any = irdl.any_of(%r_text, %r_json, %r_vec, %r_docs, %r_list)
    irdl.results(out: %r_any)
  }

  // A named workflow result.
  irdl.operation @output {
    %a_name = irdl.base "#builtin.string"
    irdl.attributes {"name" = %a_name}
    %o_text = irdl.base @agent::@text
    %o_json = irdl.base @agent::@json
    %o_vec = irdl.base @agent::@vec
    %o_docs = irdl.base @agent::@docs
    %o_list = irdl.base @agent::@list
    %o_value = irdl.any_of(%o_text, %o_json, %o_vec, %o_docs, %o_list)
    irdl.operands(value: %o_value)
  }
}
