// Interface text: Chinese first, English on the toggle. Codes from the API keep their own labels.
const TEXT = {
  zh: {
    title: "水土保持遥感监管 · 一张图", "tab.map": "地图复核", "tab.stats": "统计", signout: "退出",
    "signin.title": "登录", "signin.help": "粘贴管理员发给您的 API 令牌（soilwatch admin create-user 打印的那一串）。",
    "signin.token": "令牌", "signin.submit": "登录", "signin.bad": "令牌无效或已吊销：",
    all: "全部", "f.district": "行政区", "f.category": "合规性", "f.status": "复核状态", "f.from": "后时相自",
    "f.to": "至", "f.minarea": "最小面积（亩）", "f.minconf": "最低置信度", "f.sort": "排序", "sort.priority": "优先级", "sort.area": "面积", "sort.confidence": "置信度",
    "sort.date": "日期", count: "共 {n} 个图斑", truncated: "（只显示前 {n} 个）",
    keys: "快捷键：j/k 下一个/上一个，1–4 选择结论，Ctrl+Enter 保存",
    "img.before": "前时相", "img.after": "后时相", "img.mode": "对比", "img.none": "（无）",
    "mode.swipe": "卷帘", "mode.before": "仅前时相", "mode.after": "仅后时相",
    "panel.empty": "在列表或地图上选择一个图斑。", "p.chips": "前后时相影像", "p.matches": "匹配项目",
    "p.review": "复核", "p.history": "历史记录", "p.nomatch": "无重叠项目", "p.project": "项目",
    "p.overlap": "重叠面积（m²）", "p.share": "重叠比例",
    "a.district": "行政区", "a.category": "合规性（机器判别）", "a.reason": "判别依据", "a.area": "面积",
    "a.dates": "时相", "a.change": "变化类型", "a.confidence": "置信度", "a.status": "复核状态",
    "a.verdict": "复核结论", "a.priority": "优先级", "a.centroid": "中心点", "a.outside": "范围外面积",
    "a.nearest": "最近项目距离",
    "cat.suspected_unapproved": "疑似未批先建", "cat.suspected_out_of_bounds": "疑似超出防治责任范围",
    "cat.suspected_relocated": "疑似建设地点变更", "cat.compliant": "合规", "cat.too_small": "面积过小未判别",
    "st.unreviewed": "未复核", "st.assigned": "已分派", "st.reviewed": "已复核", "st.closed": "已销号",
    "v.confirmed_violation": "违法违规", "v.compliant": "合规", "v.not_construction": "非生产建设项目",
    "v.false_detection": "误判",
    "r.note": "说明", "r.photos": "现场照片", "r.save": "保存复核", "r.saving": "正在保存…", "r.saved": "已保存。",
    "r.pick": "请先选择复核结论（1–4）。", "r.denied": "您的角色不能复核图斑。", "r.uploaded": "已上传",
    "c.title": "保存冲突：别人先保存了这个图斑", "c.theirs": "对方的版本（当前）", "c.mine": "您的版本（未保存）",
    "c.overwrite": "以我的结论覆盖", "c.discard": "放弃我的修改", "c.by": "复核人", "c.at": "时间",
    "c.keep": "您输入的内容都还在表单里。",
    "h.empty": "暂无记录", "h.system": "系统", "h.user": "用户",
    "s.start": "起", "s.end": "止", "s.found": "发现", "s.suspected": "疑似", "s.confirmed": "确认违法",
    "s.closed": "销号", "s.reviewed": "已复核", "s.area": "面积（亩）", "s.precision": "现场准确率",
    "s.district": "行政区", "s.month": "月份", "s.total": "合计", "s.none": "所选时段没有图斑。",
    "e.export": "导出", "e.zh": "中文字段名", "e.done": "已导出 {name}",
    "legend.title": "图例", "legend.unreviewed": "未复核（虚线）", "legend.reviewed": "已复核（实线）",
    "layer.patches": "图斑", "layer.projects": "监管项目", "layer.districts": "行政区界",
    "layer.zones": "重点区域", "legend.zones": "重点区域", "f.zone": "重点区域", "zone.any": "任一重点区域",
    "a.zones": "重点区域", "a.assignee": "核查人员",
    "zone.water_source": "水源保护区", "zone.ecological_red_line": "生态保护红线", "zone.nature_reserve": "自然保护区",
    "zone.river_corridor": "河湖管理范围", "zone.steep_slope": "陡坡", "zone.geohazard": "地质灾害易发区",
    "zone.other": "其他重点区域",
    "p.assign": "分派", "as.pick": "（选择核查人员）", "as.submit": "分派", "as.done": "已分派给 {name}。",
    "as.conflict": "别人先修改了这个图斑，已重新载入；请再分派一次。", "h.photo": "现场照片",
    err: "出错了：",
  },
  en: {
    title: "Soil-conservation supervision · review map", "tab.map": "Review map", "tab.stats": "Statistics",
    signout: "Sign out", "signin.title": "Sign in",
    "signin.help": "Paste the API token your administrator gave you (printed by soilwatch admin create-user).",
    "signin.token": "Token", "signin.submit": "Sign in", "signin.bad": "Token unknown or revoked: ",
    all: "All", "f.district": "District", "f.category": "Compliance", "f.status": "Review status",
    "f.from": "After date from", "f.to": "to", "f.minarea": "Min. area (mu)", "f.minconf": "Min. confidence", "f.sort": "Sort by",
    "sort.priority": "Priority", "sort.area": "Area", "sort.confidence": "Confidence", "sort.date": "Date", count: "{n} patches",
    truncated: " (first {n} shown)", keys: "Keys: j/k next/previous, 1–4 verdict, Ctrl+Enter save",
    "img.before": "Before", "img.after": "After", "img.mode": "Compare", "img.none": "(none)",
    "mode.swipe": "Swipe", "mode.before": "Before only", "mode.after": "After only",
    "panel.empty": "Pick a patch in the list or on the map.", "p.chips": "Before / after imagery",
    "p.matches": "Matched projects", "p.review": "Review", "p.history": "History",
    "p.nomatch": "No overlapping project", "p.project": "Project", "p.overlap": "Overlap (m²)", "p.share": "Share",
    "a.district": "District", "a.category": "Compliance (machine)", "a.reason": "Reason", "a.area": "Area",
    "a.dates": "Dates", "a.change": "Change", "a.confidence": "Confidence", "a.status": "Review status",
    "a.verdict": "Verdict", "a.priority": "Priority", "a.centroid": "Centroid", "a.outside": "Area outside",
    "a.nearest": "Nearest project",
    "cat.suspected_unapproved": "Suspected unapproved", "cat.suspected_out_of_bounds": "Suspected out of bounds",
    "cat.suspected_relocated": "Suspected relocated", "cat.compliant": "Compliant", "cat.too_small": "Too small",
    "st.unreviewed": "Not reviewed", "st.assigned": "Assigned", "st.reviewed": "Reviewed", "st.closed": "Closed",
    "v.confirmed_violation": "Confirmed violation", "v.compliant": "Compliant",
    "v.not_construction": "Not construction", "v.false_detection": "False detection",
    "r.note": "Note", "r.photos": "Field photos", "r.save": "Save review", "r.saving": "Saving…", "r.saved": "Saved.",
    "r.pick": "Pick a verdict first (1–4).", "r.denied": "Your role may not review patches.", "r.uploaded": "uploaded",
    "c.title": "Conflict: someone else saved this patch first", "c.theirs": "Their version (current)",
    "c.mine": "Your version (not saved)", "c.overwrite": "Save mine over theirs", "c.discard": "Discard mine",
    "c.by": "Reviewer", "c.at": "At", "c.keep": "Everything you typed is still in the form.",
    "h.empty": "No history yet", "h.system": "system", "h.user": "user",
    "s.start": "From", "s.end": "To", "s.found": "Found", "s.suspected": "Suspected", "s.confirmed": "Confirmed",
    "s.closed": "Closed", "s.reviewed": "Reviewed", "s.area": "Area (mu)", "s.precision": "Field precision",
    "s.district": "District", "s.month": "Month", "s.total": "Total", "s.none": "No patches in this period.",
    "e.export": "Export", "e.zh": "Chinese field names", "e.done": "Exported {name}",
    "legend.title": "Legend", "legend.unreviewed": "Not reviewed (dashed)", "legend.reviewed": "Reviewed (solid)",
    "layer.patches": "Patches", "layer.projects": "Approved projects", "layer.districts": "District boundaries",
    "layer.zones": "Priority zones", "legend.zones": "Priority zones", "f.zone": "Priority zone",
    "zone.any": "Any priority zone", "a.zones": "Priority zones", "a.assignee": "Assignee",
    "zone.water_source": "Water source", "zone.ecological_red_line": "Ecological red line",
    "zone.nature_reserve": "Nature reserve", "zone.river_corridor": "River corridor", "zone.steep_slope": "Steep slope",
    "zone.geohazard": "Geohazard area", "zone.other": "Other priority zone",
    "p.assign": "Assignment", "as.pick": "(pick an inspector)", "as.submit": "Assign", "as.done": "Assigned to {name}.",
    "as.conflict": "Someone else changed this patch first; reloaded, assign again.", "h.photo": "Field photo",
    err: "Error: ",
  },
};

let lang = localStorage.getItem("soilwatch.lang") === "en" ? "en" : "zh";

export function t(key, vars = {}) {
  let text = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
  for (const [k, v] of Object.entries(vars)) text = text.replace(`{${k}}`, v);
  return text;
}

export function getLang() { return lang; }

export function setLang(value) {
  lang = value === "en" ? "en" : "zh";
  localStorage.setItem("soilwatch.lang", lang);
  applyText(document);
}

export function applyText(root) {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.title = t("title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const toggle = document.getElementById("lang");
  if (toggle) toggle.textContent = lang === "en" ? "中文" : "EN";
}
