//! Chat templates (`tokenizer.chat_template`, Jinja) rendered with minijinja, configured the way
//! Hugging Face and llama-cpp-python render them (trim_blocks, lstrip_blocks, Python string
//! methods, `raise_exception`).

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, Value, context};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};
use crate::gguf::MetadataLookup;

const TEMPLATE_NAME: &str = "chat";
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    /// Empty for an assistant turn that only calls tools.
    pub content: String,
    /// An assistant turn's tool calls, as templates expect them: `{"id", "type": "function",
    /// "function": {"name", "arguments": {...}}}` with the arguments parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Json>>,
    /// A `tool` turn's answer to this call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A `tool` turn's function name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
}

/// What a template does with tools, found by rendering probes at load time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ToolSupport {
    /// It renders the `tools` it is given (their names reach the prompt).
    pub tools: bool,
    /// It renders an assistant turn's `tool_calls`.
    pub tool_calls: bool,
    /// It renders `tool` turns.
    pub tool_responses: bool,
    /// Its tool calls are Hermes-style `<tool_call>{"name", "arguments"}</tool_call>` blocks
    /// (Hermes 2 Pro, Qwen2.5, ...).
    pub hermes: bool,
}

/// A compiled chat template.
pub struct ChatTemplate {
    environment: Environment<'static>,
    bos_token: String,
    eos_token: String,
    tool_support: ToolSupport,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are the texts templates see under those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut environment = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?;
        environment.set_syntax(syntax);
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        environment.add_template_owned(TEMPLATE_NAME, source.to_owned())?;
        let mut template = Self {
            environment,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            tool_support: ToolSupport::default(),
        };
        template.tool_support = template.probe_tool_support(source);
        Ok(template)
    }

    /// What the template does with tools.
    pub fn tool_support(&self) -> ToolSupport {
        self.tool_support
    }

    /// Renders small conversations with marker names and looks for the markers in the text.
    fn probe_tool_support(&self, source: &str) -> ToolSupport {
        const TOOL: &str = "agentc_probe_tool";
        const CALL: &str = "agentc_probe_call";
        const RESPONSE: &str = "agentc_probe_response";
        let shows = |messages: &[ChatMessage], tools: Option<&[Json]>, marker: &str| {
            self.render_with_tools(messages, tools, false)
                .is_ok_and(|text| text.contains(marker))
        };
        let user = ChatMessage::new("user", "hi");
        let tool = json!({"type": "function", "function": {
            "name": TOOL, "description": "a tool", "parameters": {"type": "object", "properties": {}}
        }});
        let mut assistant = ChatMessage::new("assistant", "");
        assistant.tool_calls = Some(vec![
            json!({"id": "call_1", "type": "function", "function": {
                "name": CALL, "arguments": {}
            }}),
        ]);
        let mut response = ChatMessage::new("tool", RESPONSE);
        response.tool_call_id = Some("call_1".to_owned());
        response.name = Some(CALL.to_owned());
        let tools = shows(std::slice::from_ref(&user), Some(&[tool]), TOOL);
        ToolSupport {
            tools,
            tool_calls: shows(&[user.clone(), assistant.clone()], None, CALL),
            tool_responses: shows(&[user, assistant, response], None, RESPONSE),
            hermes: tools && source.contains("<tool_call>"),
        }
    }

    /// The model's own template, if its metadata has one.
    pub fn from_metadata(
        metadata: &impl MetadataLookup,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Option<Self>> {
        metadata
            .get_str(CHAT_TEMPLATE_KEY)?
            .map(|source| Self::new(source, bos_token, eos_token))
            .transpose()
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// Renders `messages` with `tools` (OpenAI's `{"type": "function", "function": {...}}`
    /// objects) given to the template as `tools`, as Hugging Face does.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Json]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self.environment.get_template(TEMPLATE_NAME)?;
        template
            .render(context! {
                messages => Value::from(Serde(messages)),
                tools => tools.map(|t| Value::from(Serde(t))),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template, as stored in its GGUF.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_default_system_prompt() {
        let template = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        let text = template
            .render(&[ChatMessage::new("user", "Hi")], true)
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let source = "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0].content.strip().upper() }}{{ eos_token }}";
        let template = ChatTemplate::new(source, "<s>", "</s>").unwrap();
        assert_eq!(
            template
                .render(&[ChatMessage::new("user", "  hi ")], false)
                .unwrap(),
            "HI</s>"
        );
        let err = template
            .render(&[ChatMessage::new("system", "x")], false)
            .unwrap_err();
        assert!(err.to_string().contains("first must be user"), "{err}");
    }

    /// Qwen2.5-Instruct's template, as stored in its GGUF (Hermes-style tool calls).
    const QWEN25: &str = include_str!("../tests/fixtures/qwen2.5_chat_template.jinja");

    #[test]
    fn tool_support_is_found_by_probing() {
        let smol = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        // SmolLM2 prints any role's content, but neither tools nor tool calls.
        assert_eq!(
            smol.tool_support(),
            ToolSupport {
                tools: false,
                tool_calls: false,
                tool_responses: true,
                hermes: false
            }
        );
        let qwen = ChatTemplate::new(QWEN25, "", "<|im_end|>").unwrap();
        assert_eq!(
            qwen.tool_support(),
            ToolSupport {
                tools: true,
                tool_calls: true,
                tool_responses: true,
                hermes: true
            }
        );
    }

    #[test]
    fn hermes_templates_render_tools_calls_and_responses() {
        let qwen = ChatTemplate::new(QWEN25, "", "<|im_end|>").unwrap();
        let tool = json!({"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}});
        let mut call = ChatMessage::new("assistant", "");
        call.tool_calls = Some(vec![json!({"id": "call_7", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}})]);
        let mut answer = ChatMessage::new("tool", "-3 C");
        answer.tool_call_id = Some("call_7".to_owned());
        let text = qwen
            .render_with_tools(
                &[ChatMessage::new("user", "Weather in Oslo?"), call, answer],
                Some(&[tool]),
                true,
            )
            .unwrap();
        assert!(text.contains("<tools>\n{\"type\": \"function\""), "{text}");
        assert!(
            text.contains(
                "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "<|im_start|>user\n<tool_response>\n-3 C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(Error::ChatTemplate(_))
        ));
    }
}
